//! Writes a realistic messy CRM export (and optionally the matching DNC file) and prints what an
//! import of it must report, as JSON.
//!
//! cargo run -p importers --example gen_crm -- --rows 100000 [--seed 1] [--style salesforce|hubspot|dynamics|zoho]
//!     [--delimiter ,|;|tab|pipe] [--bom] [--latin1] [--gzip] [--xlsx] [--out FILE]
//!     [--dnc-out FILE] [--dnc-decoys N] [--invalid 0.05] [--duplicates 0.03] [--dnc 0.01]

use std::collections::HashMap;

use importers::generate::{
    Cell, CrmStyle, CsvStyle, GenOptions, Generator, write_csv, write_dnc_file,
};

fn main() -> anyhow::Result<()> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let key = a.trim_start_matches("--").to_owned();
        match key.as_str() {
            "bom" | "latin1" | "gzip" | "xlsx" => {
                args.insert(key, "1".into());
            }
            _ => {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--{key} needs a value"))?;
                args.insert(key, v);
            }
        }
    }
    let get = |k: &str| args.get(k).map(String::as_str);
    let num = |k: &str, d: f64| {
        get(k)
            .map(|v| v.parse::<f64>())
            .transpose()
            .map(|v| v.unwrap_or(d))
    };
    let mut opts = GenOptions::new(num("rows", 1000.0)? as u64, num("seed", 1.0)? as u64);
    if let Some(s) = get("style") {
        opts.style = CrmStyle::parse(s).ok_or_else(|| anyhow::anyhow!("unknown --style {s}"))?;
    }
    opts.invalid_share = num("invalid", opts.invalid_share)?;
    opts.duplicate_share = num("duplicates", opts.duplicate_share)?;
    opts.dnc_share = num("dnc", opts.dnc_share)?;
    let delimiter = match get("delimiter").unwrap_or(",") {
        "tab" | "\\t" => b'\t',
        "pipe" => b'|',
        d if d.len() == 1 => d.as_bytes()[0],
        d => anyhow::bail!("bad --delimiter {d}"),
    };
    let xlsx = get("xlsx").is_some();
    let out = get("out").map(str::to_owned).unwrap_or_else(|| {
        if xlsx {
            "crm.xlsx".into()
        } else {
            "crm.csv".into()
        }
    });
    let generator = Generator::new(opts, get("latin1").is_some() && !xlsx);
    let (expected, dnc) = if xlsx {
        write_xlsx(generator, &out)?
    } else if get("gzip").is_some() {
        let f = std::fs::File::create(&out)?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        write_csv(
            generator,
            &CsvStyle {
                delimiter,
                bom: get("bom").is_some(),
            },
            gz,
        )?
    } else {
        write_csv(
            generator,
            &CsvStyle {
                delimiter,
                bom: get("bom").is_some(),
            },
            std::fs::File::create(&out)?,
        )?
    };
    if let Some(d) = get("dnc-out") {
        let decoys = num("dnc-decoys", 0.0)? as u64;
        write_dnc_file(&dnc, decoys, 99, std::fs::File::create(d)?)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "file": out, "rows_read": expected.rows, "accepted": expected.accepted,
            "rejected": expected.rejected(), "rejected_by_reason": expected.rejected_by_reason,
            "duplicates": expected.duplicates, "dnc": expected.dnc_rows,
            "invalid_numbers_by_reason": expected.invalid_numbers_by_reason,
            "dnc_numbers": expected.dnc_numbers, "windows_1252_rows": expected.windows_1252_rows,
        })
    );
    Ok(())
}

fn write_xlsx(
    mut g: Generator,
    out: &str,
) -> anyhow::Result<(importers::generate::Expected, Vec<u64>)> {
    use chrono::Datelike;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let date_fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in g.headers().iter().enumerate() {
        ws.write_string(0, c as u16, h)?;
    }
    for (r, row) in g.by_ref().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match cell {
                Cell::Text(s) => {
                    ws.write_string(r, c, s)?;
                }
                Cell::Number(n) => {
                    ws.write_number(r, c, *n)?;
                }
                Cell::Date(d) => {
                    let dt = rust_xlsxwriter::ExcelDateTime::from_ymd(
                        d.year() as u16,
                        d.month() as u8,
                        d.day() as u8,
                    )?;
                    ws.write_datetime_with_format(r, c, &dt, &date_fmt)?;
                }
                Cell::Empty => {}
            }
        }
    }
    wb.save(out)?;
    Ok((g.expected, g.dnc_numbers))
}
