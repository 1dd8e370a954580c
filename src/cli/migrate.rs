//! `hydra migrate sql [up|down|status] [database_url]` and `hydra migrate status`, so deployment
//! scripts written for Hydra keep working.
//! - The embedded store: `up` checks that the data directory's format is the one this binary
//!   reads (a missing directory is created by the server), `status` reports it without opening
//!   the store, `down` is refused (there is nothing to roll back to).
//! - PostgreSQL: this project's schema migrations (`hydra_storage::pg::migrate`), each in its own
//!   transaction; `up` and `down` show the plan and ask before changing anything unless `--yes`.

use crate::config::pg_dsn::PgDsn;
use crate::config::{parse_dsn, Dsn};
use hydra_storage::pg::migrate;
use std::io::{BufRead, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    /// Roll back this many of the newest migrations.
    Down(usize),
    Status,
}

/// What `up` and `down` need besides the DSN.
pub struct Confirm<'a> {
    /// `--yes`: do not ask.
    pub yes: bool,
    /// Where the answer to "apply?" is read from (standard input).
    pub input: &'a mut dyn BufRead,
}

/// Runs a migration command against PostgreSQL on a runtime of its own.
fn run_pg(action: Action, d: &PgDsn, confirm: Confirm<'_>, out: &mut dyn Write) -> Result<(), String> {
    let o = crate::pg::options(d).map_err(|e| format!("Error: {e}"))?;
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("Error: cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let mut client = hydra_storage::pg::connect(&o).await.map_err(|e| format!("Error: {e}"))?;
        let status = migrate::status(&client).await.map_err(|e| format!("Error: {e}"))?;
        let pending: Vec<_> = status.iter().filter(|(_, s)| *s == migrate::State::Pending).map(|(m, _)| *m).collect();
        let applied: Vec<_> = status.iter().filter(|(_, s)| *s == migrate::State::Applied).map(|(m, _)| *m).collect();
        let plan = match action {
            Action::Status => {
                let _ = writeln!(out, "Version\tName\tStatus");
                for (m, s) in &status {
                    let s = if *s == migrate::State::Applied { "Applied" } else { "Pending" };
                    let _ = writeln!(out, "{}\t{}\t{s}", m.version, m.name);
                }
                return Ok(());
            }
            Action::Up => pending,
            Action::Down(steps) => applied.into_iter().rev().take(steps).collect(),
        };
        if plan.is_empty() {
            let _ = writeln!(
                out,
                "There are no migrations to {}.",
                if action == Action::Up { "apply" } else { "roll back" }
            );
            return Ok(());
        }
        let verb = if action == Action::Up { "apply" } else { "roll back" };
        let _ = writeln!(out, "The migrations to {verb}:");
        for m in &plan {
            let _ = writeln!(out, "{}\t{}", m.version, m.name);
        }
        if !confirm.yes {
            let _ = write!(out, "Do you want to {verb} the above planned migrations? [y/n]: ");
            let _ = out.flush();
            let mut answer = String::new();
            let _ = confirm.input.read_line(&mut answer);
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                let _ = writeln!(out, "Aborting.");
                return Ok(());
            }
        }
        let done = match action {
            Action::Down(steps) => migrate::down(&mut client, steps).await,
            _ => migrate::up(&mut client).await,
        }
        .map_err(|e| format!("Error: {e}"))?;
        for v in done {
            let _ = writeln!(out, "{} version {v}", if action == Action::Up { "Applied" } else { "Rolled back" });
        }
        let _ =
            writeln!(out, "Successfully {} migrations!", if action == Action::Up { "applied" } else { "rolled back" });
        Ok(())
    })
}

/// Runs a migration command.
pub fn run(
    action: Action,
    database_url: Option<&str>,
    read_from_env: bool,
    confirm: Confirm<'_>,
    out: &mut dyn Write,
) -> Result<(), String> {
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
        Dsn::Postgres(d) => return run_pg(action, &d, confirm, out),
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
        Action::Down(_) => Err("Error: the embedded store has no down migrations; restore a backup of the data directory instead".into()),
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
