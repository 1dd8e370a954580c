//! A small pool of helper threads for CPU-heavy work that must not run on a worker's ring
//! thread (PBKDF2 hashing and verification of client secrets).
//!
//! Invariants: a job's result reaches the awaiting worker through a oneshot channel; a panicking
//! job cannot take a worker down (the channel just closes and the caller answers 500); the queue
//! is bounded, so a flood of requests that each need a PBKDF2 (random client ids) is refused with
//! `Busy` (503) instead of queueing without limit in front of legitimate work.

use futures_channel::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs that may wait for a helper thread before new ones are refused.
const QUEUE: usize = 256;

#[derive(Clone, Debug)]
pub struct Pool {
    tx: crossbeam_channel::Sender<Job>,
}

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// The queue is full: answer 503 and let the client retry.
    Busy,
    /// The job panicked or the pool is gone.
    Failed,
}

impl Pool {
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
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

    /// Runs `f` on a helper thread.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, PoolError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.tx.try_send(job).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => PoolError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => PoolError::Failed,
        })?;
        rx.await.map_err(|_| PoolError::Failed)
    }
}

impl From<PoolError> for crate::oauth2::error::OAuthError {
    fn from(e: PoolError) -> Self {
        use crate::oauth2::error::{ErrorCode, OAuthError};
        match e {
            PoolError::Busy => OAuthError::hint(
                ErrorCode::TemporarilyUnavailable,
                "Too many client authentications are in progress; retry later.",
            ),
            PoolError::Failed => OAuthError::new(ErrorCode::ServerError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_is_refused_and_panics_are_contained() {
        let pool = Pool::new(1).unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        assert_eq!(rt.block_on(pool.run(|| 2 + 2)), Ok(4));
        assert_eq!(rt.block_on(pool.run(|| -> u8 { panic!("job bug") })), Err(PoolError::Failed));
        assert_eq!(rt.block_on(pool.run(|| 1)), Ok(1), "the helper survived the panic");
        // Block the only helper, then fill the queue.
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let blocker = pool.run(move || release_rx.recv().ok());
        let mut queued = Vec::new();
        let busy = rt.block_on(async {
            let mut blocker = Box::pin(blocker);
            // Poll once so the blocking job is submitted.
            let _ = futures_poll_once(blocker.as_mut()).await;
            for _ in 0..QUEUE + 1 {
                let mut f = Box::pin(pool.run(|| 0u8));
                match futures_poll_once(f.as_mut()).await {
                    Some(Err(PoolError::Busy)) => return true,
                    _ => queued.push(f),
                }
            }
            false
        });
        assert!(busy, "a full queue answers Busy");
        drop(release_tx);
    }

    /// Polls a future once; `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        struct Once<F>(F);
        impl<F: std::future::Future + Unpin> std::future::Future for Once<F> {
            type Output = Option<F::Output>;
            fn poll(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Self::Output> {
                std::task::Poll::Ready(match std::pin::Pin::new(&mut self.0).poll(cx) {
                    std::task::Poll::Ready(v) => Some(v),
                    std::task::Poll::Pending => None,
                })
            }
        }
        Once(f).await
    }
}
