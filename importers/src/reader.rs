//! Reading contact files as a stream of text records: CSV/TSV (delimiter sniffed among `,` `;`
//! tab `|`, quoted fields), gzip-compressed CSV, and Excel `.xlsx` (first sheet, via calamine).
//!
//! Text is decoded per row: UTF-8 (a leading BOM is dropped) when the row is valid UTF-8, else
//! Windows-1252 (a superset of Latin-1's printable range) via `encoding_rs`. CSV is streamed through
//! a 256 KiB buffer with a reused record, so memory does not grow with the file; XLSX is read whole
//! (the format is a zip of XML and calamine needs the sheet).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What was detected about the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileFormat {
    /// `csv`, `csv.gz` or `xlsx`.
    pub container: String,
    /// The delimiter for CSV (`,` `;` `\t` `|`); empty for xlsx.
    pub delimiter: String,
    /// `utf-8`, `utf-8-bom` or `xlsx`; rows that were not UTF-8 are counted in `windows_1252_rows`.
    pub encoding: String,
}

/// Counts bytes read from the underlying file (compressed bytes for gzip), for progress.
#[derive(Clone)]
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A reader that transparently decompresses gzip (detected by its magic bytes).
pub fn maybe_gunzip<R: Read + Send + 'static>(
    inner: R,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut buf = BufReader::with_capacity(256 * 1024, inner);
    let head = buf.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(buf),
        )))
    } else {
        Ok(Box::new(buf))
    }
}

/// A source of records with a header row.
pub struct RecordReader {
    pub headers: Vec<String>,
    pub format: FileFormat,
    /// Total bytes of the input file (for progress).
    pub file_size: u64,
    bytes_read: Arc<AtomicU64>,
    inner: Inner,
    /// Rows that were decoded as Windows-1252.
    pub windows_1252_rows: u64,
}

enum Inner {
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        record: csv::ByteRecord,
    },
    Rows {
        rows: std::vec::IntoIter<Vec<String>>,
    },
}

/// The result of reading one row.
pub enum ReadRow {
    /// The fields were written into the caller's buffer.
    Row,
    /// The row could not be parsed; the text is the reason (the row is still counted).
    Unreadable(String),
    End,
}

impl RecordReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let file_size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut magic = [0u8; 4];
        let n = (&file).read(&mut magic)?;
        drop(file);
        let is_zip = n == 4 && magic == [0x50, 0x4b, 0x03, 0x04];
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if is_zip || ext == "xlsx" || ext == "xlsm" {
            return Self::open_xlsx(path, file_size);
        }
        let file = File::open(path)?;
        let count = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: file,
            count: count.clone(),
        };
        let gz = magic.starts_with(&[0x1f, 0x8b]);
        let stream = maybe_gunzip(counting)?;
        Self::from_csv_stream(stream, file_size, count, if gz { "csv.gz" } else { "csv" })
    }

    /// Reads CSV text from any stream (e.g. an HTTP upload body); `size` is for progress only.
    pub fn from_reader<R: Read + Send + 'static>(reader: R, size: u64) -> anyhow::Result<Self> {
        let count = Arc::new(AtomicU64::new(0));
        let stream = maybe_gunzip(Counting {
            inner: reader,
            count: count.clone(),
        })?;
        Self::from_csv_stream(stream, size, count, "csv")
    }

    fn from_csv_stream(
        mut stream: Box<dyn BufRead + Send>,
        file_size: u64,
        count: Arc<AtomicU64>,
        container: &str,
    ) -> anyhow::Result<Self> {
        // Sniff on the first 64 KiB, then put them back in front of the stream.
        let mut head = Vec::with_capacity(64 * 1024);
        (&mut stream).take(64 * 1024).read_to_end(&mut head)?;
        let bom = head.starts_with(&[0xef, 0xbb, 0xbf]);
        let start = if bom { 3 } else { 0 };
        let delimiter = sniff_delimiter(&head[start..]);
        let chained: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(stream));
        let mut skip_bom = chained;
        if bom {
            let mut b = [0u8; 3];
            skip_bom.read_exact(&mut b)?;
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .buffer_capacity(256 * 1024)
            .from_reader(skip_bom);
        let mut record = csv::ByteRecord::new();
        let mut windows_1252_rows = 0;
        let headers = loop {
            if !reader
                .read_byte_record(&mut record)
                .context("cannot read the header row")?
            {
                bail!("the file is empty");
            }
            if record
                .iter()
                .any(|f| !f.iter().all(u8::is_ascii_whitespace))
            {
                let mut h = Vec::new();
                if decode_record(&record, &mut h) {
                    windows_1252_rows += 1;
                }
                break h
                    .into_iter()
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>();
            }
        };
        Ok(Self {
            headers,
            format: FileFormat {
                container: container.to_owned(),
                delimiter: (delimiter as char).to_string(),
                encoding: if bom { "utf-8-bom" } else { "utf-8" }.to_owned(),
            },
            file_size,
            bytes_read: count,
            inner: Inner::Csv { reader, record },
            windows_1252_rows,
        })
    }

    fn open_xlsx(path: &Path, file_size: u64) -> anyhow::Result<Self> {
        use calamine::{Reader, Xlsx, open_workbook};
        let mut wb: Xlsx<_> = open_workbook(path)
            .with_context(|| format!("cannot open {} as xlsx", path.display()))?;
        let range = wb
            .worksheet_range_at(0)
            .ok_or_else(|| anyhow::anyhow!("the workbook has no sheet"))?
            .context("cannot read the first sheet")?;
        let mut rows = range
            .rows()
            .map(|r| r.iter().map(cell_text).collect::<Vec<_>>());
        let headers = loop {
            match rows.next() {
                Some(r) if r.iter().any(|c| !c.trim().is_empty()) => {
                    break r
                        .into_iter()
                        .map(|s| s.trim().to_owned())
                        .collect::<Vec<_>>();
                }
                Some(_) => continue,
                None => bail!("the sheet is empty"),
            }
        };
        let rest: Vec<Vec<String>> = rows.collect();
        Ok(Self {
            headers,
            format: FileFormat {
                container: "xlsx".into(),
                delimiter: String::new(),
                encoding: "xlsx".into(),
            },
            file_size,
            bytes_read: Arc::new(AtomicU64::new(file_size)),
            inner: Inner::Rows {
                rows: rest.into_iter(),
            },
            windows_1252_rows: 0,
        })
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Reads the next row into `fields` (reusing its strings). Rows with only empty fields are
    /// returned as rows too (they will be rejected as blank, so they are counted).
    pub fn next_row(&mut self, fields: &mut Vec<String>) -> ReadRow {
        match &mut self.inner {
            Inner::Csv { reader, record } => match reader.read_byte_record(record) {
                Ok(true) => {
                    if decode_record(record, fields) {
                        self.windows_1252_rows += 1;
                    }
                    ReadRow::Row
                }
                Ok(false) => ReadRow::End,
                Err(e) => match e.kind() {
                    csv::ErrorKind::Io(_) => ReadRow::Unreadable(format!("io: {e}")),
                    _ => ReadRow::Unreadable(e.to_string()),
                },
            },
            Inner::Rows { rows } => match rows.next() {
                Some(r) => {
                    fields.clear();
                    fields.extend(r);
                    ReadRow::Row
                }
                None => ReadRow::End,
            },
        }
    }
}

/// Decodes a byte record into `out`; true when Windows-1252 was used.
fn decode_record(record: &csv::ByteRecord, out: &mut Vec<String>) -> bool {
    let utf8 = std::str::from_utf8(record.as_slice()).is_ok();
    out.truncate(record.len());
    for (i, f) in record.iter().enumerate() {
        if i == out.len() {
            out.push(String::new());
        }
        let s = &mut out[i];
        s.clear();
        if utf8 {
            s.push_str(std::str::from_utf8(f).expect("checked"));
        } else {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(f);
            s.push_str(&text);
        }
    }
    !utf8
}

/// Picks the delimiter whose count per line is most consistent (and non-zero) over the sample.
pub fn sniff_delimiter(sample: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    // Split into lines outside quotes, counting candidates outside quotes.
    let mut lines: Vec<[usize; 4]> = Vec::new();
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    let mut complete = false;
    for &b in sample {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => {
                lines.push(counts);
                counts = [0; 4];
                complete = true;
                if lines.len() >= 50 {
                    break;
                }
            }
            _ if !in_quotes => {
                if let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    if !complete || counts.iter().any(|&c| c > 0) {
        lines.push(counts);
    }
    let mut best = (0usize, 0usize, b',');
    for (i, &d) in CANDIDATES.iter().enumerate() {
        let header = lines.first().map(|l| l[i]).unwrap_or(0);
        if header == 0 {
            continue;
        }
        let consistent = lines.iter().filter(|l| l[i] == header).count();
        if (consistent, header) > (best.0, best.1) {
            best = (consistent, header, d);
        }
    }
    best.2
}

/// Text of a spreadsheet cell: whole numbers without `.0` (phone numbers stored as numbers),
/// dates as ISO dates.
fn cell_text(c: &calamine::Data) -> String {
    use calamine::Data;
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e17 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.format("%Y-%m-%d").to_string(),
            Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S").to_string(),
            None => d.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1;2,5;3\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\tc\n1\t2\t3\n"), b'\t');
        assert_eq!(sniff_delimiter(b"a|b|c\n1|2|3"), b'|');
        assert_eq!(sniff_delimiter(b"\"x,y\";b\n\"1,2\";3\n"), b';');
        assert_eq!(sniff_delimiter(b"single\nrow\n"), b',');
    }

    #[test]
    fn rows_decode_as_utf8_or_windows_1252() {
        let data = b"\xef\xbb\xbfName;Phone\nJos\xc3\xa9;1\nJos\xe9;2\n".to_vec();
        let mut r = RecordReader::from_reader(Cursor::new(data), 0).unwrap();
        assert_eq!(r.headers, ["Name", "Phone"]);
        assert_eq!(r.format.encoding, "utf-8-bom");
        assert_eq!(r.format.delimiter, ";");
        let mut f = Vec::new();
        assert!(matches!(r.next_row(&mut f), ReadRow::Row));
        assert_eq!(f, ["José", "1"]);
        assert!(matches!(r.next_row(&mut f), ReadRow::Row));
        assert_eq!(f, ["José", "2"]);
        assert!(matches!(r.next_row(&mut f), ReadRow::End));
        assert_eq!(r.windows_1252_rows, 1);
    }
}
