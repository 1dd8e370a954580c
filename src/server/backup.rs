//! `POST /admin/backup` (this project's, not Hydra's): an online backup of the embedded store
//! into a new directory on the server's file system, while the server keeps serving.
//!
//! Invariants: the destination must be an absolute path that does not exist yet (nothing is ever
//! overwritten); every write acknowledged before the request arrived is in the copy
//! (`Store::backup`); PostgreSQL is backed up with its own tools, and an in-memory store has
//! nothing to copy: both are refused plainly.

use crate::http::Request;
use crate::server::respond::Response;
use crate::server::state::Worker;
use serde_json::{json, Value};

pub async fn create(w: &Worker, req: &Request) -> Response {
    let dir = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => match m.get("dir") {
            Some(Value::String(d)) if !d.is_empty() => d.clone(),
            _ => return Response::generic_error(400, "invalid_request", "Field 'dir' must be a non-empty string."),
        },
        _ => return Response::generic_error(400, "invalid_request", "The request body must be a JSON object."),
    };
    let dest = std::path::PathBuf::from(&dir);
    if !dest.is_absolute() || dest.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Response::generic_error(400, "invalid_request", "Field 'dir' must be an absolute path without '..'.");
    }
    let Some(store) = w.shared.store.embedded() else {
        return Response::generic_error(
            501,
            "unsupported_request",
            "This server stores its data in PostgreSQL: back it up with PostgreSQL's own tools (pg_basebackup, pg_dump).",
        );
    };
    if store.dir().is_none() {
        return Response::generic_error(501, "unsupported_request", "An in-memory store has nothing to back up.");
    }
    if dest.exists() {
        return Response::generic_error(409, "conflict", "The backup directory exists already; name a new one.");
    }
    let started = std::time::Instant::now();
    match store.backup(&dest).await {
        Ok(r) => {
            crate::info!("backup written", "dir" = dir.as_str(), "files" = r.files, "bytes" = r.bytes);
            Response::json_value(
                201,
                &json!({"dir": dir, "files": r.files, "bytes": r.bytes, "duration_ms": started.elapsed().as_millis() as u64}),
            )
        }
        Err(e) => {
            crate::warn!("a backup failed", "dir" = dir.as_str(), "error" = e);
            Response::generic_error(500, "server_error", &format!("The backup failed: {e}"))
        }
    }
}
