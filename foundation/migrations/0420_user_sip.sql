-- SIP credentials of users whose phones register to the appliance (agents' desk phones and
-- softphone apps): MD5(username:realm:password) as hex, never the password itself. NULL: the
-- user has no phone credentials. A change of `sip.realm` invalidates them (set them again).
ALTER TABLE users ADD COLUMN sip_ha1 TEXT;
