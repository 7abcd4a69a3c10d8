//! Trick-play thumbnails in the manifests: sprite sheets (JPEG grids of
//! `columns` x `rows` tiles, each tile `tile_duration` seconds of the
//! presentation) that something else made (ffmpeg), described
//!
//! - in the DASH MPD as an image adaptation set (DASH-IF IOP 4.3 §6.2.6:
//!   `contentType="image"`, `SegmentTemplate` with `$Number$` sheets,
//!   `EssentialProperty` `http://dashif.org/thumbnail_tile` `"<cols>x<rows>"`),
//!   see [`crate::dash::Manifest::thumbnails`];
//! - in HLS as an image media playlist (the Roku / Apple "HLS image"
//!   convention: `EXT-X-IMAGES-ONLY`, `EXT-X-TILES` per sheet) that the
//!   multivariant playlist names with `EXT-X-IMAGE-STREAM-INF`.
//!
//! Pure rendering: no image is read here.

use crate::hls::media::Secs;
use crate::hls::{MediaPlaylist, PlaylistType, Segment, SegmentTags};

/// The name of the HLS image media playlist, beside the other playlists.
pub const THUMBNAIL_PLAYLIST_NAME: &str = "thumbnails.m3u8";

/// Sprite sheets of thumbnails covering a presentation.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailTrack {
    /// URI of the sheets relative to the manifests, with `$Number$` for the
    /// sheet number, counted from 1 (`thumbs/sheet-$Number$.jpg`). A list of
    /// names is not offered: dash.js reads thumbnails from a
    /// `SegmentTemplate` only.
    pub template: String,
    /// Size of one tile (one thumbnail), pixels.
    pub tile_width: u32,
    pub tile_height: u32,
    /// Tiles per sheet: `columns` across, `rows` down, in reading order.
    pub columns: u32,
    pub rows: u32,
    /// Seconds of the presentation each tile stands for.
    pub tile_duration: f64,
    /// Seconds the sheets cover in all (the presentation's duration); the
    /// last sheet may be partly filled.
    pub duration: f64,
    /// Bytes of the largest sheet, for the announced bit rate.
    pub max_sheet_bytes: u64,
}

impl ThumbnailTrack {
    /// Seconds one full sheet covers.
    pub fn sheet_duration(&self) -> f64 {
        f64::from(self.columns) * f64::from(self.rows) * self.tile_duration
    }

    /// Whether the description can be rendered: sizes and durations positive,
    /// the template naming `$Number$`.
    pub fn is_valid(&self) -> bool {
        self.tile_width > 0
            && self.tile_height > 0
            && self.columns > 0
            && self.rows > 0
            && self.tile_duration.is_finite()
            && self.tile_duration > 0.0
            && self.duration.is_finite()
            && self.duration > 0.0
            && self.template.contains("$Number$")
    }

    /// Number of sheets: enough to cover `duration`.
    pub fn sheets(&self) -> u64 {
        let sheet = self.sheet_duration();
        if !self.is_valid() || sheet <= 0.0 {
            return 0;
        }
        // A sheet a rounding error past the end is not made.
        ((self.duration / sheet) - 1e-6).ceil().max(1.0) as u64
    }

    /// The URI of sheet `number` (from 1).
    pub fn sheet_uri(&self, number: u64) -> String {
        self.template.replace("$Number$", &number.to_string())
    }

    /// Peak bit rate of the sheets, bits/s: the largest sheet over one sheet's
    /// duration (DASH `bandwidth`, HLS `BANDWIDTH`). At least 1.
    pub fn bandwidth(&self) -> u64 {
        let sheet = self.sheet_duration();
        if sheet <= 0.0 {
            return 1;
        }
        ((self.max_sheet_bytes as f64 * 8.0 / sheet).ceil() as u64).max(1)
    }

    /// Width and height of a whole sheet, pixels (DASH `width`/`height`).
    pub fn sheet_size(&self) -> (u32, u32) {
        (
            self.tile_width.saturating_mul(self.columns),
            self.tile_height.saturating_mul(self.rows),
        )
    }

    /// `EXT-X-TILES` attributes: the tile size, the layout and each tile's
    /// duration.
    fn tiles_tag(&self) -> String {
        format!(
            "EXT-X-TILES:RESOLUTION={}x{},LAYOUT={}x{},DURATION={}",
            self.tile_width,
            self.tile_height,
            self.columns,
            self.rows,
            Secs(self.tile_duration)
        )
    }

    /// The HLS image media playlist (VOD): one entry per sheet, each with
    /// its `EXT-X-TILES`. Empty when the description is not valid.
    pub fn hls_playlist(&self) -> MediaPlaylist {
        let sheet = self.sheet_duration();
        let count = self.sheets();
        let segments: Vec<Segment> = (0..count)
            .map(|i| {
                let start = i as f64 * sheet;
                let length = (self.duration - start).min(sheet).max(0.0);
                Segment {
                    tags: SegmentTags {
                        other: vec![self.tiles_tag()],
                        ..SegmentTags::default()
                    },
                    ..Segment::new(i, self.sheet_uri(i + 1), length)
                }
            })
            .collect();
        let target_duration = segments
            .iter()
            .map(|s| s.duration.round() as u32)
            .max()
            .unwrap_or(0)
            .max(1);
        MediaPlaylist {
            version: Some(7),
            target_duration,
            playlist_type: Some(PlaylistType::Vod),
            header_tags: vec!["EXT-X-IMAGES-ONLY".into()],
            segments,
            end_list: true,
            ..MediaPlaylist::default()
        }
    }

    /// The multivariant playlist's `EXT-X-IMAGE-STREAM-INF` naming the image
    /// playlist `uri` (without the leading `#`, as
    /// [`crate::hls::MultivariantPlaylist::other_tags`] holds it).
    pub fn image_stream_inf(&self, uri: &str) -> String {
        format!(
            "EXT-X-IMAGE-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"jpeg\",URI=\"{uri}\"",
            self.bandwidth(),
            self.tile_width,
            self.tile_height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::{MultivariantPlaylist, UriKind};

    fn track() -> ThumbnailTrack {
        ThumbnailTrack {
            template: "thumbs/sheet-$Number$.jpg".into(),
            tile_width: 160,
            tile_height: 90,
            columns: 5,
            rows: 4,
            tile_duration: 2.0,
            duration: 95.5,
            max_sheet_bytes: 40_000,
        }
    }

    #[test]
    fn image_playlist_covers_the_duration_and_round_trips() {
        let t = track();
        assert_eq!(t.sheet_duration(), 40.0);
        assert_eq!(t.sheets(), 3);
        assert_eq!(t.bandwidth(), 8_000);
        let pl = t.hls_playlist();
        let text = pl.to_string();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:40\n#EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-IMAGES-ONLY\n\
             #EXT-X-TILES:RESOLUTION=160x90,LAYOUT=5x4,DURATION=2\n#EXTINF:40,\nthumbs/sheet-1.jpg\n\
             #EXT-X-TILES:RESOLUTION=160x90,LAYOUT=5x4,DURATION=2\n#EXTINF:40,\nthumbs/sheet-2.jpg\n\
             #EXT-X-TILES:RESOLUTION=160x90,LAYOUT=5x4,DURATION=2\n#EXTINF:15.5,\nthumbs/sheet-3.jpg\n\
             #EXT-X-ENDLIST\n"
        );
        let parsed: MediaPlaylist = text.parse().unwrap();
        assert_eq!(parsed, pl);
        assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn exact_multiple_makes_no_empty_sheet_and_invalid_makes_none() {
        let t = ThumbnailTrack {
            duration: 80.0,
            ..track()
        };
        assert_eq!(t.sheets(), 2);
        for bad in [
            ThumbnailTrack {
                columns: 0,
                ..track()
            },
            ThumbnailTrack {
                tile_duration: f64::NAN,
                ..track()
            },
            ThumbnailTrack {
                template: "sheet.jpg".into(),
                ..track()
            },
        ] {
            assert_eq!(bad.sheets(), 0);
            assert!(bad.hls_playlist().segments.is_empty());
        }
    }

    #[test]
    fn image_stream_inf_is_kept_and_its_uri_visited() {
        let tag = track().image_stream_inf(THUMBNAIL_PLAYLIST_NAME);
        let text = format!("#EXTM3U\n#{tag}\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n");
        let mut pl: MultivariantPlaylist = text.parse().unwrap();
        assert_eq!(pl.to_string(), text);
        let mut seen = Vec::new();
        pl.for_each_uri_mut(|k, u| {
            seen.push(k);
            u.push_str("?t=1");
        });
        assert!(seen.contains(&UriKind::ImageVariant));
        assert!(pl
            .to_string()
            .contains("CODECS=\"jpeg\",URI=\"thumbnails.m3u8?t=1\""));
    }
}
