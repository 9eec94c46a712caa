//! Media: RTP sessions, codecs, DTMF, prompts, recording, answering-machine detection, bridging.
