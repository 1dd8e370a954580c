//! Listening sockets: every worker binds its own listener on the same address with
//! `SO_REUSEPORT`, so the kernel spreads connections over workers.
//!
//! Invariant: an address another process already listens on is refused before the group binds
//! ("address already in use", as Hydra): `SO_REUSEPORT` would otherwise let a second server of
//! the same user join silently and take part of the traffic to another database.

use std::net::SocketAddr;

pub(super) fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {addr}"))
}

/// Fails when something already listens on `addr` (a fixed port): a probe socket without
/// `SO_REUSEPORT` cannot bind where any listener is.
pub(super) fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() == 0 {
        return Ok(());
    }
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Connections of an earlier run in TIME_WAIT do not count.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())
}

/// Sets TCP_USER_TIMEOUT on an accepted connection: data it cannot deliver for `t` (a peer that
/// vanished, or one whose receive window stays shut because it stopped reading; Linux applies
/// the timeout to zero-window probes too) fails the pending write, and the connection closes.
pub(super) fn set_user_timeout(stream: &impl std::os::fd::AsRawFd, t: std::time::Duration) -> std::io::Result<()> {
    // SAFETY: the descriptor is `stream`'s, which is borrowed for the whole call, so it stays
    // open and is not reused while `fd` exists; nothing here closes or takes ownership of it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    socket2::SockRef::from(&fd).set_tcp_user_timeout(Some(t))
}

pub(super) fn bind_reuseport(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(s.into())
}
