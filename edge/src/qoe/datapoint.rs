//! Workers Analytics Engine rows: what the edge writes for each media
//! request with CMCD and each beacon (`writeDataPoint`: up to 20 blobs, 20
//! doubles, one index). The layout is the contract the SQL in docs/qoe.md
//! reads; append new fields at the end, never reorder.
//!
//! | field | CMCD row (`blob1 = 'cmcd'`) | beacon row (`blob1 = 'beacon'`) |
//! |---|---|---|
//! | index1 | stream | stream |
//! | blob2..5 | stream, country, rendition, sid | the same |
//! | blob6 | `ot` | `ev` (`hb`, `end`) |
//! | blob7 | `sf` | error (or empty) |
//! | blob8 | `st` | |
//! | double1 | `br` kbps | `watch_ms` |
//! | double2 | `d` ms | `stall_ms` |
//! | double3 | `bl` ms | `stalls` |
//! | double4 | `mtp` kbps | `startup_ms` (-1: not started) |
//! | double5 | `bs` (0/1) | `latency_ms` (-1: none) |
//! | double6 | `su` (0/1) | started (0/1) |
//! | double7 | `tb` kbps | exited before start (0/1) |
//! | double8 | `rtp` kbps | |
//! | double9 | `pr` | |
//! | double10 | `dl` ms | |
//!
//! Absent numbers are -1, absent strings empty, so every row has every
//! column and `WHERE double1 >= 0` selects rows that carried the value.

use super::aggregate::Origin;
use super::beacon::{Beacon, Event};
use super::cmcd::Cmcd;

/// One row, as `writeDataPoint` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub index: String,
    pub blobs: Vec<String>,
    pub doubles: Vec<f64>,
}

/// Analytics Engine's index is at most 96 bytes; stream names are 64.
const MAX_INDEX: usize = 96;

fn num(v: Option<u32>) -> f64 {
    v.map_or(-1.0, f64::from)
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn common(kind: &str, at: Origin<'_>, sid: &str) -> (String, Vec<String>) {
    let index: String = at.stream.chars().take(MAX_INDEX).collect();
    let blobs = vec![
        kind.to_owned(),
        at.stream.to_owned(),
        at.country.unwrap_or("XX").to_owned(),
        at.rendition.unwrap_or("").to_owned(),
        sid.to_owned(),
    ];
    (index, blobs)
}

/// The row for a media request's CMCD.
pub fn cmcd_row(at: Origin<'_>, c: &Cmcd) -> DataPoint {
    let (index, mut blobs) = common("cmcd", at, c.sid.as_deref().unwrap_or(""));
    blobs.push(c.ot.map(|o| o.as_str()).unwrap_or("").to_owned());
    blobs.push(c.sf.map(String::from).unwrap_or_default());
    blobs.push(c.st.map(|t| t.as_str()).unwrap_or("").to_owned());
    DataPoint {
        index,
        blobs,
        doubles: vec![
            num(c.br),
            num(c.d),
            num(c.bl),
            num(c.mtp),
            flag(c.bs),
            flag(c.su),
            num(c.tb),
            num(c.rtp),
            c.pr.unwrap_or(-1.0),
            num(c.dl),
        ],
    }
}

/// The row for a beacon.
pub fn beacon_row(at: Origin<'_>, b: &Beacon) -> DataPoint {
    let (index, mut blobs) = common("beacon", at, &b.sid);
    blobs.push(
        match b.ev {
            Event::Heartbeat => "hb",
            Event::End => "end",
        }
        .to_owned(),
    );
    blobs.push(b.error.clone().unwrap_or_default());
    let ms = |v: Option<u64>| v.map_or(-1.0, |v| v as f64);
    DataPoint {
        index,
        blobs,
        doubles: vec![
            b.watch_ms as f64,
            b.stall_ms as f64,
            f64::from(b.stalls),
            ms(b.startup_ms),
            ms(b.latency_ms),
            flag(b.started),
            flag(b.exited_before_start()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_documented_layout() {
        let at = Origin {
            stream: "cam1",
            country: Some("NL"),
            rendition: Some("720p"),
            media_object: true,
        };
        let c =
            Cmcd::parse(r#"br=2500,bl=1200,bs,d=2000,mtp=9000,ot=v,sf=h,sid="a",st=l,su,tb=4000"#)
                .unwrap();
        let row = cmcd_row(at, &c);
        assert_eq!(row.index, "cam1");
        assert_eq!(
            row.blobs,
            ["cmcd", "cam1", "NL", "720p", "a", "v", "h", "l"]
        );
        assert_eq!(
            row.doubles,
            [2500.0, 2000.0, 1200.0, 9000.0, 1.0, 1.0, 4000.0, -1.0, -1.0, -1.0]
        );
        let b = Beacon::parse(br#"{"v":1,"sid":"a","ev":"end","started":false,"watch_ms":3000,"stalls":0,"stall_ms":0}"#).unwrap();
        let row = beacon_row(
            Origin {
                country: None,
                ..at
            },
            &b,
        );
        assert_eq!(row.blobs, ["beacon", "cam1", "XX", "720p", "a", "end", ""]);
        assert_eq!(row.doubles, [3000.0, 0.0, 0.0, -1.0, -1.0, 0.0, 1.0]);
        assert!(row.blobs.len() <= 20 && row.doubles.len() <= 20);
    }
}
