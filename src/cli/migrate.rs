//! `hydra migrate sql [up|down|status] [database_url]` and `hydra migrate status` for the embedded
//! store, so deployment scripts written for Hydra keep working: `up` checks that the data
//! directory's format is the one this binary reads (a missing directory is created by the server), `status` reports it without opening
//! the store, `down` is refused (there is nothing to roll back to).

use crate::config::{parse_dsn, Dsn};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Status,
}

/// Runs a migration command; returns the exit code.
pub fn run(action: Action, database_url: Option<&str>, read_from_env: bool, out: &mut dyn Write) -> Result<(), String> {
    let raw = match (database_url, read_from_env) {
        (Some(u), _) => Some(u.to_string()),
        (None, true) => std::env::var("DSN").ok(),
        (None, false) => {
            return Err("Error: give the database URL as an argument, or use -e/--read-from-env to read DSN".into())
        }
    };
    let dsn = parse_dsn(raw.as_deref()).map_err(|e| format!("Error: {e}"))?;
    let dir = match dsn {
        Dsn::Memory => {
            let _ = writeln!(out, "The in-memory store has no migrations; nothing to do.");
            return Ok(());
        }
        Dsn::Redb(dir) => dir,
        Dsn::Postgres(_) => return Err(format!("Error: {}", crate::config::POSTGRES_NOT_YET)),
    };
    let current = hydra_storage::FORMAT_VERSION;
    let found = hydra_storage::manifest_info(&dir).map_err(|e| format!("Error: {e}"))?;
    match action {
        Action::Status => {
            let _ = writeln!(out, "Version\tName\tStatus");
            let state = match found {
                None => "Pending (the data directory does not exist yet)".to_string(),
                Some((f, p)) if f == current => format!("Applied ({p} partitions)"),
                Some((f, _)) => format!("Unsupported: the data directory has format {f}"),
            };
            let _ = writeln!(out, "{current}\tembedded store format {current}\t{state}");
            Ok(())
        }
        Action::Down => Err("Error: the embedded store has no down migrations; restore a backup of the data directory instead".into()),
        Action::Up => match found {
            Some((f, _)) if f == current => {
                let _ = writeln!(out, "The data directory is at format {current}; no migrations to apply.");
                Ok(())
            }
            Some((f, _)) => Err(format!(
                "Error: the data directory has format {f}, which this binary cannot upgrade to {current}; export and re-import its clients"
            )),
            None => {
                // Not created here: its partition count comes from the server's configuration.
                let _ = writeln!(
                    out,
                    "The data directory {} does not exist yet; the server creates it at format {current} on first start.",
                    dir.display()
                );
                let _ = writeln!(out, "Successfully applied migrations!");
                Ok(())
            }
        },
    }
}
