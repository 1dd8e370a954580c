//! Where a store's bytes live: real files (optionally behind a fault switch, for I/O-error
//! tests of the whole server), or a simulated disk that keeps what was synced apart from what
//! was only written, for power-loss tests.
//!
//! Invariants: the simulated disk's `crash` is atomic with respect to every operation (one
//! mutex), so a sync that returned before the crash is in the image and one that did not is
//! not; after a crash the old disk fails every operation, as a machine without power would; the
//! crash image keeps every synced byte and an arbitrary subset of unsynced 512-byte sectors (a
//! device may persist any of them, in any order); log writes are synchronous (O_DSYNC), so they
//! are durable when they return. The fault switch only ever turns an operation into an error,
//! never changes data.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FaultMode {
    None = 0,
    /// Every write (and file growth) fails with ENOSPC: a full disk.
    DiskFull = 1,
    /// Every sync (and synchronous log write) fails with EIO: a failing device.
    SyncFails = 2,
}

/// A switch the tests flip; checked before each write and sync.
#[derive(Debug, Default)]
pub struct Faults(AtomicU8);

impl Faults {
    pub fn set(&self, mode: FaultMode) {
        self.0.store(mode as u8, Ordering::SeqCst);
    }

    pub fn mode(&self) -> FaultMode {
        match self.0.load(Ordering::SeqCst) {
            1 => FaultMode::DiskFull,
            2 => FaultMode::SyncFails,
            _ => FaultMode::None,
        }
    }

    pub(crate) fn check_write(&self) -> io::Result<()> {
        match self.mode() {
            FaultMode::DiskFull => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            _ => Ok(()),
        }
    }

    pub(crate) fn check_sync(&self) -> io::Result<()> {
        match self.mode() {
            FaultMode::SyncFails => Err(io::Error::from_raw_os_error(libc::EIO)),
            _ => Ok(()),
        }
    }
}

/// redb's file backend behind a fault switch.
#[derive(Debug)]
pub(crate) struct FaultyFile {
    inner: redb::backends::FileBackend,
    faults: Arc<Faults>,
}

impl FaultyFile {
    pub(crate) fn new(file: File, faults: Arc<Faults>) -> Result<Self, redb::DatabaseError> {
        Ok(FaultyFile { inner: redb::backends::FileBackend::new(file)?, faults })
    }
}

impl redb::StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check_write()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.check_sync()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.check_write()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// A write or resize not yet synced.
#[derive(Debug, Clone)]
enum Unsynced {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    /// What reads see.
    current: Vec<u8>,
    /// What survives a crash for certain.
    durable: Vec<u8>,
    unsynced: Vec<Unsynced>,
}

#[derive(Debug, Default)]
struct SimState {
    files: HashMap<String, SimFile>,
    /// Power is off: every operation fails.
    dead: bool,
}

/// An in-memory disk that remembers what was synced, for power-loss tests.
#[derive(Debug, Default)]
pub struct SimDisk {
    state: Mutex<SimState>,
    pub faults: Arc<Faults>,
}

const SECTOR: usize = 512;

fn dead() -> io::Error {
    io::Error::other("the simulated machine has lost power")
}

fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let at = offset as usize;
    if buf.len() < at + data.len() {
        buf.resize(at + data.len(), 0);
    }
    buf[at..at + data.len()].copy_from_slice(data);
}

impl SimDisk {
    pub fn new() -> Arc<SimDisk> {
        Arc::new(SimDisk::default())
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut SimFile) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.state.lock().map_err(|_| io::Error::other("simulated disk poisoned"))?;
        if s.dead {
            return Err(dead());
        }
        f(s.files.entry(name.to_string()).or_default())
    }

    /// Cuts the power: this disk fails from now on, and the returned disk holds what a device
    /// could have kept: every synced byte, plus each unsynced 512-byte sector and resize kept
    /// or lost by a coin `keep` tosses.
    pub fn crash(&self, keep: &mut dyn FnMut() -> bool) -> Arc<SimDisk> {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        s.dead = true;
        let mut files = HashMap::new();
        for (name, f) in &s.files {
            let mut image = f.durable.clone();
            for u in &f.unsynced {
                match u {
                    Unsynced::SetLen(len) => {
                        if keep() {
                            image.resize(*len as usize, 0);
                        }
                    }
                    Unsynced::Write(off, data) => {
                        for (i, sector) in data.chunks(SECTOR).enumerate() {
                            let at = *off as usize + i * SECTOR;
                            // Bytes past the file's recorded end are lost with its size.
                            if at + sector.len() <= image.len() && keep() {
                                image[at..at + sector.len()].copy_from_slice(sector);
                            }
                        }
                    }
                }
            }
            files.insert(name.clone(), SimFile { current: image.clone(), durable: image, unsynced: Vec::new() });
        }
        Arc::new(SimDisk { state: Mutex::new(SimState { files, dead: false }), faults: Arc::default() })
    }

    pub(crate) fn backend(self: &Arc<Self>, name: &str) -> SimBackend {
        SimBackend { disk: self.clone(), name: name.to_string() }
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.state.lock().is_ok_and(|s| s.files.contains_key(name))
    }

    /// A log file: created zero-filled and synced when new or short.
    pub(crate) fn log(self: &Arc<Self>, name: &str, size: u64) -> io::Result<SimLog> {
        self.with(name, |f| {
            if (f.current.len() as u64) < size {
                f.current.resize(size as usize, 0);
                f.durable = f.current.clone();
                f.unsynced.clear();
            }
            Ok(())
        })?;
        Ok(SimLog { disk: self.clone(), name: name.to_string() })
    }
}

/// A database file on the simulated disk.
#[derive(Debug)]
pub(crate) struct SimBackend {
    disk: Arc<SimDisk>,
    name: String,
}

impl redb::StorageBackend for SimBackend {
    fn len(&self) -> io::Result<u64> {
        self.disk.with(&self.name, |f| Ok(f.current.len() as u64))
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.disk.with(&self.name, |f| {
            let at = offset as usize;
            let src = f.current.get(at..at + out.len()).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            out.copy_from_slice(src);
            Ok(())
        })
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk.faults.check_write()?;
        self.disk.with(&self.name, |f| {
            f.current.resize(len as usize, 0);
            f.unsynced.push(Unsynced::SetLen(len));
            Ok(())
        })
    }
    fn sync_data(&self) -> io::Result<()> {
        self.disk.faults.check_sync()?;
        self.disk.with(&self.name, |f| {
            f.durable = f.current.clone();
            f.unsynced.clear();
            Ok(())
        })
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.faults.check_write()?;
        self.disk.with(&self.name, |f| {
            write_into(&mut f.current, offset, data);
            f.unsynced.push(Unsynced::Write(offset, data.to_vec()));
            Ok(())
        })
    }
}

/// A write-ahead log file on the simulated disk: writes are synchronous.
#[derive(Debug)]
pub(crate) struct SimLog {
    disk: Arc<SimDisk>,
    name: String,
}

impl SimLog {
    pub(crate) fn write_durable(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.faults.check_write()?;
        self.disk.faults.check_sync()?;
        self.disk.with(&self.name, |f| {
            write_into(&mut f.current, offset, data);
            // Earlier unsynced writes to this file stay unsynced; this one is durable.
            write_into(&mut f.durable, offset, data);
            Ok(())
        })
    }

    pub(crate) fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.disk.with(&self.name, |f| {
            let at = offset as usize;
            let src = f.current.get(at..at + out.len()).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            out.copy_from_slice(src);
            Ok(())
        })
    }

    pub(crate) fn len(&self) -> io::Result<u64> {
        self.disk.with(&self.name, |f| Ok(f.current.len() as u64))
    }
}
