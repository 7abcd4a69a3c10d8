//! The job runners: `vod.workers` processing loops (probe, transcode,
//! package, thumbnails, store), one loop for deletions and webhooks. Jobs
//! come from the database with a lease the runner renews while it works
//! (`db.rs`); the heavy steps run on blocking threads, ffmpeg as a child that
//! dies with the origin.
//!
//! Nothing half-made is ever served: objects go to storage first (media,
//! then manifests), then the asset becomes `ready` in one statement; an
//! asset that fails is `errored` with the reason and its objects removed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::runtime::Handle;
use tracing::{info, warn};

use super::db::{Job, JobKind, Status};
use crate::store::storage::Key;
use brook_packager::thumbnail::ThumbnailTrack;

use super::{asset_key, asset_prefix, package, probe, thumbnails, transcode, webhook, Vod};

/// How often a runner looks for work when there was none.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// A transcode that reports no progress this long is stopped (a hung ffmpeg
/// must not hold a worker forever).
const STALL_AFTER: Duration = Duration::from_secs(300);
/// How often an upload directory is swept of expired uploads.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    crate::serve::hub::unix_ms()
}

/// Starts the runners on `rt`, after handing over what the last run left
/// (uploads complete but not queued).
pub fn start(vod: &Arc<Vod>, rt: &Handle) {
    {
        let _in_runtime = rt.enter();
        vod.recover_uploads();
    }
    for n in 0..vod.config.workers {
        let vod = vod.clone();
        rt.spawn(async move {
            loop {
                if vod.stopping.load(Ordering::Relaxed) {
                    return;
                }
                // Each claim has an owner of its own (`<worker>/<n>`): a
                // runner late to renew cannot keep a job another runner of
                // this process took over meanwhile.
                let owner = vod.claim_owner();
                match vod
                    .db
                    .claim(&[JobKind::Process], &owner, now_ms(), vod.lease_ms())
                {
                    Ok(Some(job)) => run_process(&vod, job, &owner).await,
                    Ok(None) => tokio::time::sleep(IDLE_POLL).await,
                    Err(e) => {
                        warn!(worker = n, "claiming a job: {e}");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }
    let vod = vod.clone();
    rt.spawn(async move {
        let mut last_sweep = std::time::Instant::now();
        loop {
            if vod.stopping.load(Ordering::Relaxed) {
                return;
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = std::time::Instant::now();
                // Uploads complete but not handed over (the hand-over
                // failed, or a creation carried the whole file) go now.
                for done in vod.uploads.completed() {
                    vod.upload_completed(&done);
                }
                let swept = vod.uploads.sweep(now_ms() / 1000);
                if swept > 0 {
                    info!(swept, "expired uploads removed");
                }
            }
            let claimed = vod.db.claim(
                &[JobKind::Delete, JobKind::Webhook],
                &vod.worker_id,
                now_ms(),
                vod.lease_ms(),
            );
            match claimed {
                Ok(Some(job)) if job.kind == JobKind::Delete => run_delete(&vod, job).await,
                Ok(Some(job)) => run_webhook(&vod, job).await,
                Ok(None) => tokio::time::sleep(IDLE_POLL).await,
                Err(e) => {
                    warn!("claiming a job: {e}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
}

impl Vod {
    fn lease_ms(&self) -> u64 {
        self.config.lease_s * 1000
    }

    /// A lease owner for one claim: this worker's id and a random number.
    fn claim_owner(&self) -> String {
        let mut n = [0u8; 8];
        let _ = getrandom::fill(&mut n);
        format!("{}/{:016x}", self.worker_id, u64::from_le_bytes(n))
    }

    /// Removes a process job's uploaded file (the asset is ready, errored or
    /// deleted): the local file, or storage's copy (`sources/<asset>`). A
    /// file fetched from a URL is in the work directory, which goes with it.
    async fn drop_source(&self, job: &Job) {
        if job.payload.starts_with(super::SOURCE_AT_URL) {
            return;
        }
        match job.payload.strip_prefix(super::SOURCE_IN_STORAGE) {
            Some(key) => {
                if let Ok(key) = Key::new(key) {
                    if let Err(e) = self.storage.delete(&key).await {
                        warn!(asset = %job.asset_id, "removing the uploaded source: {e}");
                    }
                }
            }
            None => {
                let _ = std::fs::remove_file(&job.payload);
            }
        }
    }

    /// Queues the webhook for an asset's new state (when one is configured).
    fn notify(&self, asset_id: &str, kind: &str) {
        if self.config.webhook_url.is_none() {
            return;
        }
        let Ok(Some(asset)) = self.db.asset(asset_id) else {
            return;
        };
        let base = self.config.public_url.clone().unwrap_or_default();
        let event = webhook::Event {
            kind,
            created_ms: now_ms(),
            data: self.asset_json(&asset, base.trim_end_matches('/')),
        };
        let body = serde_json::to_string(&event).unwrap_or_default();
        if let Err(e) = self.db.enqueue(JobKind::Webhook, asset_id, &body, now_ms()) {
            warn!(asset = asset_id, "queueing the {kind} webhook: {e}");
        }
    }
}

/// Keeps a job's lease while `work` runs; `false` from the renewal (another
/// worker has it) sets `lost`.
async fn with_lease<T>(
    vod: &Arc<Vod>,
    job: &Job,
    owner: &str,
    lost: Arc<AtomicBool>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let renew = {
        let (vod, id, lost, owner) = (vod.clone(), job.id, lost.clone(), owner.to_owned());
        async move {
            let mut renewed = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if vod.stopping.load(Ordering::Relaxed) {
                    // Stops ffmpeg; the job stays this worker's, for the
                    // next start to take up.
                    lost.store(true, Ordering::Relaxed);
                }
                if renewed.elapsed() < Duration::from_millis(vod.lease_ms() / 3) {
                    continue;
                }
                renewed = std::time::Instant::now();
                match vod.db.renew(id, &owner, now_ms() + vod.lease_ms()) {
                    Ok(true) => {}
                    Ok(false) => lost.store(true, Ordering::Relaxed),
                    Err(e) => warn!(job = id, "renewing a lease: {e}"),
                }
            }
        }
    };
    tokio::select! {
        out = work => out,
        () = renew => unreachable!("the renewal loop does not end"),
    }
}

async fn run_process(vod: &Arc<Vod>, job: Job, owner: &str) {
    let asset = job.asset_id.clone();
    let lost = Arc::new(AtomicBool::new(false));
    info!(%asset, attempt = job.attempts + 1, "processing");
    // An asset deleted since its job was queued is not made at all.
    let result = match vod.db.set_status(&asset, Status::Processing, now_ms()) {
        Ok(true) => {
            with_lease(
                vod,
                &job,
                owner,
                lost.clone(),
                process(vod, &job, lost.clone()),
            )
            .await
        }
        Ok(false) => Err(Failure::Deleted),
        Err(e) => Err(Failure::Retry(e.to_string())),
    };
    let work = vod.work_dir(&asset);
    if vod.stopping.load(Ordering::Relaxed) {
        info!(%asset, "stopping: the job runs again at the next start");
        return;
    }
    if lost.load(Ordering::Relaxed) {
        // Another worker took the job over (this one stalled past its
        // lease): its result is the one that counts.
        warn!(%asset, "lost the job's lease; leaving it to its new worker");
        return;
    }
    match result {
        Ok(details) => match vod.db.set_ready(&asset, &details, now_ms()) {
            // Ready first, then the source goes: a crash in between leaves
            // a ready asset and a stray file, never a lost one.
            Ok(true) => {
                info!(%asset, "ready");
                let _ = vod.db.finish(job.id);
                vod.notify(&asset, "asset.ready");
                let _ = std::fs::remove_dir_all(&work);
                vod.drop_source(&job).await;
            }
            Ok(false) => {
                // Deleted while the last objects were stored: they go too.
                let _ = vod.storage.delete_prefix(&asset_prefix(&asset)).await;
                let _ = std::fs::remove_dir_all(&work);
                vod.drop_source(&job).await;
                let _ = vod.db.finish(job.id);
            }
            Err(e) => {
                warn!(%asset, "marking ready: {e}");
                let _ = vod.db.retry(job.id, &e.to_string(), now_ms() + 5_000);
            }
        },
        Err(Failure::Deleted) => {
            let _ = vod.storage.delete_prefix(&asset_prefix(&asset)).await;
            let _ = std::fs::remove_dir_all(&work);
            vod.drop_source(&job).await;
            let _ = vod.db.finish(job.id);
        }
        Err(Failure::Asset(reason)) => {
            warn!(%asset, "cannot be made: {reason}");
            let _ = std::fs::remove_dir_all(&work);
            // Whatever was stored goes; nothing of it was ever served.
            let _ = vod.storage.delete_prefix(&asset_prefix(&asset)).await;
            if matches!(vod.db.set_errored(&asset, &reason, now_ms()), Ok(true)) {
                vod.notify(&asset, "asset.errored");
            }
            let _ = vod.db.finish(job.id);
            vod.drop_source(&job).await;
        }
        Err(Failure::Retry(reason)) => {
            // Storage or the machine failed, not the asset: try again later.
            let _ = std::fs::remove_dir_all(&work);
            let delay = webhook::backoff(job.attempts + 1).min(Duration::from_secs(60));
            warn!(%asset, "will retry in {delay:?}: {reason}");
            if job.attempts + 1 >= 5 {
                let _ = vod.storage.delete_prefix(&asset_prefix(&asset)).await;
                if matches!(vod.db.set_errored(&asset, &reason, now_ms()), Ok(true)) {
                    vod.notify(&asset, "asset.errored");
                }
                let _ = vod.db.finish(job.id);
                vod.drop_source(&job).await;
            } else {
                let _ = vod.db.set_status(&asset, Status::Queued, now_ms());
                let _ = vod
                    .db
                    .retry(job.id, &reason, now_ms() + delay.as_millis() as u64);
            }
        }
    }
}

enum Failure {
    /// The upload cannot become an asset (the user-facing reason).
    Asset(String),
    /// Something outside the asset failed; the job runs again.
    Retry(String),
    /// The asset was deleted while it was being made.
    Deleted,
}

/// An asset from a URL: the file fetched into the job's work directory
/// (`import::fetch`, every hop checked again: what resolved to a public
/// address when the API looked may not now). A refusal, a 4xx, a file too
/// large fail the asset; a server or network failure runs the job again
/// (from the start: a fetch is not resumed).
async fn fetch_input(
    vod: &Arc<Vod>,
    asset: &super::db::Asset,
    input: &str,
    work: &std::path::Path,
    lost: &AtomicBool,
) -> Result<PathBuf, Failure> {
    let url = super::import::check::parse_input_url(input)
        .map_err(|e| Failure::Asset(format!("the input URL: {e}")))?;
    let mut limits = super::import::Limits::from_config(&vod.config);
    // The request's own limit, within the configured one.
    if let Some(n) = asset
        .details
        .as_ref()
        .and_then(|d| d.pointer("/request/max_size_bytes"))
        .and_then(serde_json::Value::as_u64)
    {
        limits.max_bytes = limits.max_bytes.min(n);
    }
    let dest = work.join("source");
    match super::import::fetch(&url, &limits, &dest, lost).await {
        Ok(f) => {
            info!(asset = %asset.id, bytes = f.bytes, redirects = f.redirects, "input URL fetched");
            let m = &vod.metrics.vod_imports;
            m.fetch("fetched");
            m.bytes.fetch_add(f.bytes, Ordering::Relaxed);
            Ok(dest)
        }
        Err(super::import::FetchError::Stopped) => Err(Failure::Retry("stopped mid-fetch".into())),
        Err(e) if e.is_transient() => {
            vod.metrics.vod_imports.fetch("retried");
            Err(Failure::Retry(format!("fetching the input URL: {e}")))
        }
        Err(e) => {
            vod.metrics
                .vod_imports
                .fetch(if matches!(e, super::import::FetchError::Refused(_)) {
                    "refused"
                } else {
                    "failed"
                });
            Err(Failure::Asset(format!("fetching the input URL: {e}")))
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::Retry(format!("a job thread failed: {e}")))
}

/// Probe, transcode, package, thumbnails, store. Returns the asset's details.
async fn process(
    vod: &Arc<Vod>,
    job: &Job,
    lost: Arc<AtomicBool>,
) -> Result<serde_json::Value, Failure> {
    let asset_id = job.asset_id.clone();
    let asset = match vod.db.asset(&asset_id) {
        Ok(Some(a)) if a.status == Status::Deleting => return Err(Failure::Deleted),
        Ok(Some(a)) => a,
        Ok(None) => return Err(Failure::Deleted),
        Err(e) => return Err(Failure::Retry(e.to_string())),
    };
    // The asset's key first: an origin that cannot open it leaves the job
    // to another (or to a later try) before any work is done.
    let encryption = match vod.packaging_encryption(&asset_id) {
        Ok(e) => e,
        Err(super::keys::KeyFailure::Refused(e)) => return Err(Failure::Asset(e)),
        Err(e) => return Err(Failure::Retry(e.to_string())),
    };
    let work = vod.work_dir(&asset_id);
    // A previous attempt's leftovers (a restart mid-job) start over.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| Failure::Retry(format!("creating {}: {e}", work.display())))?;
    let download_started = std::time::Instant::now();
    let source = if let Some(input) = job.payload.strip_prefix(super::SOURCE_AT_URL) {
        fetch_input(vod, &asset, input, &work, &lost).await?
    } else {
        match job.payload.strip_prefix(super::SOURCE_IN_STORAGE) {
            // A shared queue: the upload may have arrived at another origin.
            Some(key) => {
                let key = Key::new(key)
                    .map_err(|e| Failure::Asset(format!("the upload's key {key}: {e}")))?;
                let local = work.join("source");
                match vod.storage.get_to_file(&key, &local).await {
                    Ok(Some(bytes)) => {
                        info!(asset = %asset_id, bytes, "upload fetched from storage")
                    }
                    Ok(None) => return Err(Failure::Asset("the uploaded file is gone".into())),
                    Err(e) => return Err(Failure::Retry(format!("fetching the upload: {e}"))),
                }
                local
            }
            None => PathBuf::from(&job.payload),
        }
    };
    let download_ms = download_started.elapsed().as_millis() as u64;
    if !source.is_file() {
        return Err(Failure::Asset("the uploaded file is gone".into()));
    }

    // How long each step took, for the asset's details (and the benchmark).
    let mut step = std::time::Instant::now();
    let mut timings = serde_json::Map::new();
    if job.payload.starts_with(super::SOURCE_AT_URL) {
        timings.insert("download".to_owned(), json!(download_ms));
    }
    let mut lap = |name: &str| {
        timings.insert(name.to_owned(), json!(step.elapsed().as_millis() as u64));
        step = std::time::Instant::now();
    };
    // 1. Probe.
    let mut probe_config = vod.config.probe.clone();
    probe_config.max_duration_secs = probe_config
        .max_duration_secs
        .min(vod.config.max_duration_s as f64)
        .min(asset.max_duration_s.map_or(f64::MAX, |d| d as f64));
    let src = source.clone();
    let probed = blocking(move || probe::run(&src, &probe_config)).await?;
    let probed = probed.map_err(|e| Failure::Asset(e.to_string()))?;
    let _ = vod.db.set_duration(&asset_id, probed.duration_secs);

    lap("probe");
    // 2. Transcode into one MPEG-TS.
    let plan = transcode::VodPlan::new(&probed, &vod.ladder, &vod.config.encode)
        .map_err(|e| Failure::Asset(e.to_string()))?;
    let ts = work.join("ladder.ts");
    // ffmpeg stops when the lease is lost (or the origin stops), and when it
    // reports nothing for STALL_AFTER: a hung child must not hold a worker.
    let cancel = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(now_ms()));
    let watchdog = {
        let (cancel, stalled, heard, lost) =
            (cancel.clone(), stalled.clone(), heard.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if lost.load(Ordering::Relaxed) {
                    cancel.store(true, Ordering::Relaxed);
                }
                let silent = now_ms().saturating_sub(heard.load(Ordering::Relaxed));
                if silent > STALL_AFTER.as_millis() as u64 {
                    stalled.store(true, Ordering::Relaxed);
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        })
    };
    let (vod2, id2, src, ts2, plan2, cancel2, heard2) = (
        vod.clone(),
        asset_id.clone(),
        source.clone(),
        ts.clone(),
        plan.clone(),
        cancel.clone(),
        heard.clone(),
    );
    let transcoded = blocking(move || {
        let mut last = std::time::Instant::now();
        transcode::run(&plan2, &src, &ts2, &cancel2, |pct| {
            heard2.store(now_ms(), Ordering::Relaxed);
            // Transcoding is the first 90 %; packaging and storing the rest.
            if last.elapsed() >= Duration::from_millis(500) || pct >= 100.0 {
                last = std::time::Instant::now();
                let _ = vod2.db.set_progress(&id2, pct * 0.9, now_ms());
            }
        })
    })
    .await;
    watchdog.abort();
    let transcoded = transcoded?;
    if lost.load(Ordering::Relaxed) {
        return Err(Failure::Retry("lease lost".into()));
    }
    if stalled.load(Ordering::Relaxed) {
        return Err(Failure::Asset(format!(
            "transcoding stopped: ffmpeg reported no progress for {} s",
            STALL_AFTER.as_secs()
        )));
    }
    match transcoded {
        Ok(()) => {}
        Err(
            e @ (transcode::FfmpegError::Interrupted(_) | transcode::FfmpegError::Spawn { .. }),
        ) => return Err(Failure::Retry(e.to_string())),
        Err(e) => return Err(Failure::Asset(format!("transcoding failed: {e}"))),
    }

    lap("transcode");
    // 3. Thumbnails, from the source (full quality): the poster and the
    // trick-play sprites, which the manifests then describe.
    let out = work.join("out");
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::Retry(format!("creating {}: {e}", out.display())))?;
    let (src, out2, sprite_config, probed2, cancel) = (
        source.clone(),
        out.clone(),
        vod.config.thumbnails.clone(),
        probed.clone(),
        lost.clone(),
    );
    let ffmpeg = vod.config.encode.ffmpeg.clone();
    let poster_max = vod.config.poster_max_width;
    let ladder_ts = ts.clone();
    // The transcoder's video streams are the rungs in order, tallest first.
    let smallest = plan
        .plan
        .rungs
        .iter()
        .enumerate()
        .min_by_key(|(_, r)| u64::from(r.width) * u64::from(r.height))
        .map(|(i, r)| (i, (r.width, r.height)));
    // A time the upload asked for (clamped to the video), or automatic.
    let poster_at = asset
        .details
        .as_ref()
        .and_then(|d| d.pointer("/request/poster_time_s"))
        .and_then(serde_json::Value::as_f64);
    let thumbs = blocking(move || {
        let poster = thumbnails::poster(
            &ffmpeg, &src, &probed2, poster_at, poster_max, &out2, &cancel,
        )?;
        // The sprites from the smallest rung the transcode just made: a
        // second decode of the source would cost far more (docs/vod.md).
        let sprites = match smallest {
            Some((index, size)) => thumbnails::sprites_from_ladder(
                &ffmpeg,
                &ladder_ts,
                index,
                size,
                probed2.duration_secs,
                &sprite_config,
                &out2,
                &cancel,
            )?,
            None => thumbnails::sprites(&ffmpeg, &src, &probed2, &sprite_config, &out2, &cancel)?,
        };
        Ok::<_, transcode::FfmpegError>((poster, sprites))
    })
    .await?;
    let (poster, sprites) = match thumbs {
        Ok(t) => t,
        Err(
            e @ (transcode::FfmpegError::Interrupted(_)
            | transcode::FfmpegError::Spawn { .. }
            | transcode::FfmpegError::Cancelled),
        ) => return Err(Failure::Retry(e.to_string())),
        Err(e) => return Err(Failure::Asset(format!("making thumbnails failed: {e}"))),
    };
    let sheet_bytes = sprites
        .sheets
        .iter()
        .filter_map(|n| std::fs::metadata(out.join(n)).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0);
    let track = ThumbnailTrack {
        template: thumbnails::SHEET_TEMPLATE.to_owned(),
        tile_width: sprites.tile_width,
        tile_height: sprites.tile_height,
        columns: sprites.cols,
        rows: sprites.rows,
        tile_duration: f64::from(sprites.interval_secs),
        duration: probed.duration_secs,
        max_sheet_bytes: sheet_bytes,
    };
    let _ = vod.db.set_progress(&asset_id, 91.0, now_ms());

    lap("thumbnails");
    // 4. Package (encrypted with the asset's key, if it has one).
    let names = plan.rendition_names();
    let segment_ms = vod.config.encode.segment_ms;
    let (ts2, out2) = (ts.clone(), out.clone());
    let packaged = blocking(move || {
        package::package(&package::PackageInput {
            ts: &ts2,
            outdir: &out2,
            rendition_names: names,
            segment_ms,
            thumbnails: Some(track),
            encryption,
        })
    })
    .await?
    .map_err(|e| Failure::Asset(format!("packaging failed: {e:#}")))?;
    let _ = std::fs::remove_file(&ts);
    let _ = vod.db.set_progress(&asset_id, 92.0, now_ms());
    let mut images: Vec<String> = vec![poster.file.clone(), sprites.vtt.clone()];
    images.extend(sprites.sheets.iter().cloned());

    lap("package");
    // 5. Store: media and images first, manifests last.
    let mut files: Vec<String> = packaged.media.clone();
    files.extend(images);
    files.extend(packaged.manifests.iter().cloned());
    let total = files.len().max(1);
    for (i, name) in files.iter().enumerate() {
        match vod.db.asset(&asset_id) {
            Ok(Some(a)) if a.status != Status::Deleting => {}
            Ok(_) => return Err(Failure::Deleted),
            Err(e) => return Err(Failure::Retry(e.to_string())),
        }
        let key = asset_key(&asset_id, name)
            .map_err(|e| Failure::Asset(format!("object name {name}: {e}")))?;
        vod.storage
            .put_file(&key, &out.join(name))
            .await
            .map_err(|e| Failure::Retry(format!("storing: {e}")))?;
        if i % 20 == 0 {
            let _ = vod
                .db
                .set_progress(&asset_id, 92.0 + 8.0 * i as f64 / total as f64, now_ms());
        }
    }
    // Every object the manifests name is in storage before the asset is ready.
    let stored = vod
        .storage
        .list(&asset_prefix(&asset_id))
        .await
        .map_err(|e| Failure::Retry(format!("listing: {e}")))?;
    let prefix = asset_prefix(&asset_id);
    let stored: std::collections::HashSet<&str> = stored
        .iter()
        .filter_map(|k| k.as_str().strip_prefix(prefix.as_str()))
        .collect();
    if let Some(missing) = files.iter().find(|f| !stored.contains(f.as_str())) {
        return Err(Failure::Retry(format!(
            "{missing} is not in storage after writing it"
        )));
    }
    lap("store");
    Ok(json!({
        "renditions": plan.plan.rungs.iter().map(|r| json!({
            "name": r.name, "width": r.width, "height": r.height, "bitrate_kbps": r.bitrate_kbps,
        })).chain(plan.plan.audio_kbps.map(|kbps| json!({
            "name": crate::pipeline::ladder::AUDIO, "bitrate_kbps": kbps,
        }))).collect::<Vec<_>>(),
        "thumbnails": {
            "poster": { "file": poster.file, "width": poster.width, "height": poster.height, "time_s": poster.time_secs },
            "vtt": sprites.vtt,
            "sheets": sprites.sheets,
            "tile_width": sprites.tile_width,
            "tile_height": sprites.tile_height,
            "columns": sprites.cols,
            "rows": sprites.rows,
            "interval_s": sprites.interval_secs,
        },
        "source": {
            "container": probed.container,
            "width": probed.video.width,
            "height": probed.video.height,
            "rotation": probed.video.rotation,
            "video_codec": probed.video.codec,
            "audio_codec": probed.audio.as_ref().map(|a| a.codec.clone()),
            "hdr": probed.video.hdr,
        },
        "objects": files.len(),
        "timings_ms": timings,
        "bytes": packaged.bytes,
    }))
}

async fn run_delete(vod: &Arc<Vod>, job: Job) {
    let asset = &job.asset_id;
    // A process job still at work on it stores objects until it sees the
    // deletion: wait for it to stop (it removes what it stored), then
    // delete what is left.
    if matches!(vod.db.has_job(asset, JobKind::Process), Ok(true)) {
        let _ = vod.db.retry(
            job.id,
            "waiting for the asset's job to stop",
            now_ms() + 1_000,
        );
        return;
    }
    match vod.storage.delete_prefix(&asset_prefix(asset)).await {
        Ok(n) => {
            info!(%asset, objects = n, "deleted");
            let _ = std::fs::remove_dir_all(vod.work_dir(asset));
            // An upload not yet processed (queued, or stored for a shared
            // queue) goes too.
            let _ = std::fs::remove_file(vod.source_path(asset));
            if let Ok(key) = super::source_key(asset) {
                let _ = vod.storage.delete(&key).await;
            }
            let _ = vod.db.remove_asset(asset);
            let _ = vod.db.finish(job.id);
        }
        Err(e) => {
            warn!(%asset, "deleting: {e}");
            let delay = webhook::backoff(job.attempts + 1);
            let _ = vod
                .db
                .retry(job.id, &e.to_string(), now_ms() + delay.as_millis() as u64);
        }
    }
}

async fn run_webhook(vod: &Arc<Vod>, job: Job) {
    let (Some(url), Some(secret)) = (&vod.config.webhook_url, &vod.config.webhook_secret) else {
        let _ = vod.db.finish(job.id);
        return;
    };
    let sent = webhook::deliver(
        &vod.http_client,
        url,
        secret.as_bytes(),
        &job.payload,
        now_ms() / 1000,
    )
    .await;
    match sent {
        Ok(()) => {
            let _ = vod.db.finish(job.id);
        }
        Err(e) if job.attempts + 1 >= vod.config.webhook_attempts => {
            warn!(asset = %job.asset_id, "webhook given up after {} attempts: {e}", job.attempts + 1);
            let _ = vod.db.finish(job.id);
        }
        Err(e) => {
            let delay = webhook::backoff(job.attempts + 1);
            warn!(asset = %job.asset_id, "webhook failed, again in {delay:?}: {e}");
            let _ = vod
                .db
                .retry(job.id, &e, now_ms() + delay.as_millis() as u64);
        }
    }
}
