//! systemd's readiness protocol (`sd_notify`): under a `Type=notify` unit (`NOTIFY_SOCKET` set)
//! the server says `READY=1` once its listeners are bound and its workers run, and `STOPPING=1`
//! when it begins a graceful stop. Without `NOTIFY_SOCKET`, nothing happens.
//!
//! Invariant: a failure to notify is logged and never stops the server (systemd then times the
//! start out, which says more than a crash would).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket (`@name`).
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr)
            }
            None => sock.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        crate::warn!("could not notify systemd", "error" = e.to_string());
    }
}
