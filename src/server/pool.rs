//! A small pool of helper threads for CPU-heavy work that must not run on a worker's ring
//! thread (PBKDF2 hashing and verification of client secrets).
//!
//! Invariant: a job's result reaches the awaiting worker through a oneshot channel; a panicking
//! job cannot take a worker down (the channel just closes and the caller answers 500).

use futures_channel::oneshot;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone, Debug)]
pub struct Pool {
    tx: crossbeam_channel::Sender<Job>,
}

impl Pool {
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("helper-{i}")).spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A panic inside one job must not end the helper thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        }
        Ok(Pool { tx })
    }

    /// Runs `f` on a helper thread; `None` if the job died or the pool is gone.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.tx.send(job).ok()?;
        rx.await.ok()
    }
}
