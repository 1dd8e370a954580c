//! The write-ahead log of one partition: a preallocated, zero-filled file of checksummed redo
//! records, each written with one synchronous (O_DSYNC, and O_DIRECT where the filesystem allows)
//! write before its batch is committed to redb without an fsync.
//!
//! Invariants: records of an epoch are written back to back from offset 0 with consecutive
//! sequence numbers, each padded to whole 4 KiB blocks; an epoch's records are only meaningful
//! on top of the durable redb state that recorded that epoch, and a new epoch starts only after
//! a durable commit has recorded it (so stale records of older epochs are ignored, whatever is
//! left in the file); reading stops at the first record that is missing, torn (bad checksum),
//! of another epoch or out of sequence. Because the file's blocks are allocated and written
//! once, appending never changes file metadata, so a write costs one data write and a device
//! cache flush.

use crate::disk::{Faults, SimDisk, SimLog};
use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const BLOCK: usize = 4096;
const HEADER: usize = 32;
const MAGIC: u32 = u32::from_le_bytes(*b"HWAL");

/// Default log size per partition.
pub const DEFAULT_WAL_BYTES: u64 = 16 << 20;

/// Where the log's bytes go.
enum LogIo {
    /// A real file opened O_DSYNC (and O_DIRECT where allowed), behind an optional fault switch.
    File {
        file: File,
        direct: bool,
        faults: Option<Arc<Faults>>,
    },
    Sim(SimLog),
}

/// What [`Wal::records`] reads through.
enum Reader<'a> {
    File(File),
    Sim(&'a SimLog),
}

pub(crate) struct Wal {
    path: PathBuf,
    io: LogIo,
    size: u64,
    pos: u64,
    epoch: u64,
    next_lsn: u64,
    /// Scratch for one record; the write starts at its first 4 KiB-aligned byte.
    buf: Vec<u8>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("path", &self.path).field("epoch", &self.epoch).field("pos", &self.pos).finish()
    }
}

fn io<'a>(path: &'a Path, what: &'a str) -> impl Fn(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Io(format!("{what} {}: {e}", path.display()))
}

impl Wal {
    /// Opens the log at `path`, creating it (or extending it) zero-filled to `size` bytes.
    /// The log is positioned nowhere: call [`Wal::records`] to read it, then [`Wal::reset`].
    pub(crate) fn open(path: &Path, size: u64, faults: Option<Arc<Faults>>) -> Result<Wal, StoreError> {
        let size = log_size(size);
        let current = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(path, "reading")(e)),
        };
        if current < size {
            // Written, not just allocated: an appended record must never need the file system
            // to convert unwritten extents or grow the file, which would add metadata to every
            // sync.
            use std::os::unix::fs::PermissionsExt;
            let f =
                OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(io(path, "creating"))?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io(path, "restricting"))?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = current / BLOCK as u64 * BLOCK as u64;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                f.write_all_at(&zeros[..n], at).map_err(io(path, "zero-filling"))?;
                at += n as u64;
            }
            f.sync_all().map_err(io(path, "syncing"))?;
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir, "syncing"))?;
            }
        }
        let (file, direct) = open_for_append(path)?;
        Ok(Wal::with_io(path.to_path_buf(), LogIo::File { file, direct, faults }, size))
    }

    /// Opens the log `name` on a simulated disk.
    pub(crate) fn open_sim(disk: &Arc<SimDisk>, name: &str, size: u64) -> Result<Wal, StoreError> {
        let size = log_size(size);
        let path = PathBuf::from(name);
        let log = disk.log(name, size).map_err(io(&path, "creating"))?;
        Ok(Wal::with_io(path, LogIo::Sim(log), size))
    }

    fn with_io(path: PathBuf, io: LogIo, size: u64) -> Wal {
        Wal { path, io, size, pos: 0, epoch: 0, next_lsn: 1, buf: Vec::new() }
    }

    /// The payloads of `epoch`'s records, in order.
    pub(crate) fn records(&self, epoch: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let reader = match &self.io {
            // The append handle may be O_DIRECT, which refuses unaligned reads: read through another.
            LogIo::File { .. } => Reader::File(File::open(&self.path).map_err(io(&self.path, "opening"))?),
            LogIo::Sim(log) => Reader::Sim(log),
        };
        let read_exact_at = |buf: &mut [u8], at: u64| match &reader {
            Reader::File(f) => f.read_exact_at(buf, at),
            Reader::Sim(log) => log.read_at(at, buf),
        };
        let len = match &reader {
            Reader::File(f) => f.metadata().map(|m| m.len()),
            Reader::Sim(log) => log.len(),
        }
        .map_err(io(&self.path, "reading"))?;
        let mut out = Vec::new();
        let mut pos = 0u64;
        let mut header = [0u8; HEADER];
        while pos + HEADER as u64 <= len {
            read_exact_at(&mut header, pos).map_err(io(&self.path, "reading"))?;
            let Some(h) = Header::parse(&header) else { break };
            let expected_lsn = out.len() as u64 + 1;
            if h.epoch != epoch || h.lsn != expected_lsn || pos + padded(h.len) > len {
                break;
            }
            let mut payload = vec![0u8; h.len];
            read_exact_at(&mut payload, pos + HEADER as u64).map_err(io(&self.path, "reading"))?;
            if checksum(&header, &payload) != h.crc {
                break;
            }
            out.push(payload);
            pos += padded(h.len);
        }
        Ok(out)
    }

    /// Starts `epoch` at the beginning of the file. Only after a durable commit recorded it.
    pub(crate) fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.pos = 0;
        self.next_lsn = 1;
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes of the file holding the current epoch's records.
    pub(crate) fn used(&self) -> u64 {
        self.pos
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether a record with this payload still fits in the file.
    pub(crate) fn fits(&self, payload_len: usize) -> bool {
        self.pos + padded(payload_len) <= self.size
    }

    /// Appends one record; returns once it is durable. On error the record may be partly on
    /// disk: the caller must not append again before a checkpoint and [`Wal::reset`].
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if !self.fits(payload.len()) {
            return Err(StoreError::Io("write-ahead log full".into()));
        }
        let total = padded(payload.len()) as usize;
        if self.buf.len() < total + BLOCK {
            self.buf = vec![0u8; total + BLOCK];
        }
        let off = self.buf.as_ptr().align_offset(BLOCK);
        if off >= BLOCK {
            return Err(StoreError::Io("cannot align the write-ahead log buffer".into()));
        }
        let rec = &mut self.buf[off..off + total];
        let mut header = [0u8; HEADER];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        header[16..24].copy_from_slice(&self.next_lsn.to_le_bytes());
        let crc = checksum(&header, payload);
        header[24..28].copy_from_slice(&crc.to_le_bytes());
        rec[..HEADER].copy_from_slice(&header);
        rec[HEADER..HEADER + payload.len()].copy_from_slice(payload);
        rec[HEADER + payload.len()..].fill(0);
        let written = match &mut self.io {
            LogIo::Sim(log) => log.write_durable(self.pos, rec),
            LogIo::File { file, direct, faults } => {
                let checked = faults.as_ref().map_or(Ok(()), |f| f.check_write().and_then(|()| f.check_sync()));
                match checked.and_then(|()| file.write_all_at(rec, self.pos)) {
                    // Some file systems accept O_DIRECT at open and refuse it at write time.
                    Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => {
                        *file = OpenOptions::new()
                            .write(true)
                            .custom_flags(libc::O_DSYNC)
                            .open(&self.path)
                            .map_err(io(&self.path, "reopening"))?;
                        *direct = false;
                        file.write_all_at(rec, self.pos)
                    }
                    other => other,
                }
            }
        };
        written.map_err(io(&self.path, "appending to"))?;
        self.pos += total as u64;
        self.next_lsn += 1;
        Ok(())
    }
}

fn open_for_append(path: &Path) -> Result<(File, bool), StoreError> {
    let open = |flags| OpenOptions::new().write(true).custom_flags(flags).open(path);
    match open(libc::O_DSYNC | libc::O_DIRECT) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Ok((open(libc::O_DSYNC).map_err(io(path, "opening"))?, false))
        }
        Err(e) => Err(io(path, "opening")(e)),
    }
}

fn log_size(size: u64) -> u64 {
    size.max(BLOCK as u64 * 16) / BLOCK as u64 * BLOCK as u64
}

fn padded(payload_len: usize) -> u64 {
    ((HEADER + payload_len).div_ceil(BLOCK) * BLOCK) as u64
}

fn checksum(header: &[u8; HEADER], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..24]);
    h.update(payload);
    h.finalize()
}

struct Header {
    len: usize,
    epoch: u64,
    lsn: u64,
    crc: u32,
}

impl Header {
    fn parse(b: &[u8; HEADER]) -> Option<Header> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        (u32_at(0) == MAGIC).then(|| Header {
            len: u32_at(4) as usize,
            epoch: u64_at(8),
            lsn: u64_at(16),
            crc: u32_at(24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.wal");
        (dir, p)
    }

    #[test]
    fn records_of_the_epoch_come_back_in_order() {
        let (_d, p) = fresh();
        let mut w = Wal::open(&p, 1 << 20, None).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1 << 20);
        w.reset(7);
        let payloads: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 700]).collect();
        for pl in &payloads {
            w.append(pl).unwrap();
        }
        let again = Wal::open(&p, 1 << 20, None).unwrap();
        assert_eq!(again.records(7).unwrap(), payloads);
        assert!(again.records(6).unwrap().is_empty());
        assert!(again.records(8).unwrap().is_empty());
    }

    #[test]
    fn stale_records_of_an_older_epoch_are_ignored_after_reset() {
        let (_d, p) = fresh();
        let mut w = Wal::open(&p, 1 << 20, None).unwrap();
        w.reset(1);
        for i in 0..5u8 {
            w.append(&[i; 100]).unwrap();
        }
        w.reset(2);
        w.append(b"new").unwrap();
        let r = Wal::open(&p, 1 << 20, None).unwrap();
        assert_eq!(r.records(2).unwrap(), vec![b"new".to_vec()]);
        // Epoch 1's first record was overwritten, so its chain no longer starts at 1.
        assert!(r.records(1).unwrap().is_empty());
    }

    #[test]
    fn reading_stops_at_a_torn_record() {
        let (_d, p) = fresh();
        let mut w = Wal::open(&p, 1 << 20, None).unwrap();
        w.reset(3);
        for i in 0..4u8 {
            w.append(&[i; 5000]).unwrap();
        }
        // Flip one payload byte of the third record (each is 2 blocks).
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let at = 2 * 2 * BLOCK as u64 + HEADER as u64 + 10;
        f.write_all_at(&[0xee], at).unwrap();
        let r = Wal::open(&p, 1 << 20, None).unwrap().records(3).unwrap();
        assert_eq!(r, vec![vec![0u8; 5000], vec![1u8; 5000]]);
    }

    #[test]
    fn a_full_log_refuses_instead_of_wrapping() {
        let (_d, p) = fresh();
        let mut w = Wal::open(&p, 64 * 1024, None).unwrap();
        w.reset(1);
        let mut n = 0;
        while w.fits(3000) {
            w.append(&[1; 3000]).unwrap();
            n += 1;
        }
        assert_eq!(n, 16);
        assert!(w.append(&[1; 3000]).is_err());
        assert_eq!(w.used(), w.size());
    }
}
