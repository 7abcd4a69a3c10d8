//! `brook-token`: mint and check Brook viewer tokens (EdgeAuth 2.0 layout,
//! see docs/tokens.md) from a shell or a backend job.
//!
//! ```sh
//! export TOKEN_KEYS='2026a:<hex>'                 # same value as the Worker secret
//! brook-token sign --acl '/live/cam1/*' --ttl 3600 --session viewer-42 --max-height 720
//! brook-token sign --acl '/live/cam1/*' --ttl 3600 --session mod-1 --moderator cam1
//! brook-token sign --acl '/vod/0123456789abcdef0123456789abcdef/*' --ttl 7200  # one VOD asset
//! brook-token verify --path /live/cam1/index.m3u8 "$TOKEN"
//! ```
//!
//! Keys come from `--keys` or the `TOKEN_KEYS` environment variable (prefer
//! the variable: command lines are visible to other users).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use brook_edge::access::token::{self, Entitlements, Grant, KeySet};
use brook_edge::chat::identity::moderator_claim;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "brook-token",
    version,
    about = "Mint and check Brook viewer tokens"
)]
struct Cli {
    /// Signing keys, `id:hexsecret[,id:hexsecret...]` (default: $TOKEN_KEYS).
    #[arg(long, global = true)]
    keys: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a signed token.
    Sign {
        /// Path pattern the token opens; `*` matches anything. Repeatable.
        #[arg(long, required = true)]
        acl: Vec<String>,
        /// Lifetime in seconds from now (or from --start).
        #[arg(long, default_value_t = 3600, conflicts_with = "expires")]
        ttl: u64,
        /// Absolute expiry, Unix seconds.
        #[arg(long)]
        expires: Option<u64>,
        /// Not valid before this Unix time (`st`).
        #[arg(long)]
        start: Option<u64>,
        /// Bind to this client address (`ip`).
        #[arg(long)]
        ip: Option<String>,
        /// Viewer session id (`id`).
        #[arg(long)]
        session: Option<String>,
        /// Highest resolution height the viewer may get (`data=maxh:N`).
        #[arg(long)]
        max_height: Option<u32>,
        /// Highest variant bandwidth, bits/s (`data=maxbw:N`).
        #[arg(long)]
        max_bandwidth: Option<u64>,
        /// Make the holder a chat moderator of this stream (`data=mod:<stream>`;
        /// `*`: every stream). Repeatable. See docs/chat.md.
        #[arg(long, value_name = "STREAM")]
        moderator: Vec<String>,
        /// Key to sign with (default: the first one).
        #[arg(long)]
        key_id: Option<String>,
        /// Leave out `kid` (a plain EdgeAuth token; the edge then tries every key).
        #[arg(long)]
        no_kid: bool,
    },
    /// Check a token the way the edge does; prints its fields, or why it fails.
    Verify {
        token: String,
        /// Request path to check the ACL against.
        #[arg(long)]
        path: String,
        /// Client address, for tokens bound to one.
        #[arg(long)]
        ip: Option<String>,
        /// Check as of this Unix time (default: now).
        #[arg(long)]
        now: Option<u64>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("brook-token: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `data` field: entitlement claims, then moderator claims.
fn data(entitlements: Entitlements, moderates: &[String]) -> Option<String> {
    let claims: Vec<String> = entitlements
        .to_data()
        .into_iter()
        .chain(moderates.iter().map(|s| moderator_claim(s)))
        .collect();
    (!claims.is_empty()).then(|| claims.join(","))
}

fn run(cli: Cli) -> Result<(), String> {
    let keys = cli
        .keys
        .or_else(|| std::env::var("TOKEN_KEYS").ok())
        .ok_or("no keys: pass --keys or set TOKEN_KEYS")?;
    let keys = KeySet::parse(&keys).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Sign {
            acl,
            ttl,
            expires,
            start,
            ip,
            session,
            max_height,
            max_bandwidth,
            moderator,
            key_id,
            no_kid,
        } => {
            let key = match &key_id {
                Some(id) => keys
                    .get(id)
                    .ok_or(format!("no key {id:?} in the key set"))?,
                None => keys
                    .ids()
                    .next()
                    .and_then(|id| keys.get(id))
                    .ok_or("the key set is empty")?,
            };
            let expires = expires.unwrap_or_else(|| start.unwrap_or_else(now) + ttl);
            let grant = Grant {
                expires,
                start,
                acl,
                ip,
                session_id: session,
                data: data(
                    Entitlements {
                        max_height,
                        max_bandwidth,
                    },
                    &moderator,
                ),
                key_id: (!no_kid).then(|| key.id().to_owned()),
            };
            println!("{}", token::sign(&grant, key));
            Ok(())
        }
        Command::Verify {
            token: t,
            path,
            ip,
            now: at,
        } => {
            let req = token::Request {
                now: at.unwrap_or_else(now),
                path: &path,
                client_ip: ip.as_deref(),
            };
            match token::verify(&t, &keys, &req) {
                Ok(g) => {
                    println!("valid: {g:?}");
                    Ok(())
                }
                Err(reject) => Err(format!("invalid: {}", reject.as_str())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_holds_entitlements_then_moderator_claims() {
        let caps = Entitlements {
            max_height: Some(720),
            max_bandwidth: None,
        };
        assert_eq!(
            data(caps, &["cam1".into(), "cam2".into()]).as_deref(),
            Some("maxh:720,mod:cam1,mod:cam2")
        );
        assert_eq!(data(Entitlements::default(), &[]), None);
        let d = data(Entitlements::default(), &["cam1".into()]).unwrap();
        assert!(brook_edge::chat::identity::moderates(&d, "cam1"));
    }
}
