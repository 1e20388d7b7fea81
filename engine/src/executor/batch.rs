//! Group commit: requests that arrive while a batch is being written wait for the next one, and
//! each batch is one transaction. The batcher takes whatever is already waiting (it never waits
//! for more), so an idle system pays no latency and a busy one pays one round of statements per
//! batch instead of per request.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// Most requests handled in one batch.
pub const MAX_BATCH: usize = 256;

type Request<I, O> = (I, oneshot::Sender<O>);

/// A handle to a batching task; cloning it shares the task.
pub struct Batcher<I, O> {
    tx: mpsc::Sender<Request<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the task; it ends when every handle is dropped. `handle` answers a batch with one
    /// output per input, in order. One batch runs at a time: the next begins when it ends, so
    /// batches keep the order requests arrived in.
    pub fn start<F, Fut>(handle: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        Self::start_parallel(1, handle)
    }

    /// Like [`Batcher::start`], with up to `parallel` batches running at once: while one waits on
    /// the database the next is already collected and sent, which shortens the wait under load
    /// where order between batches does not matter (claims, outcomes, key lookups).
    pub fn start_parallel<F, Fut>(parallel: usize, handle: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Request<I, O>>(4096);
        let handle = std::sync::Arc::new(handle);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = rx.recv().await else {
                    return;
                };
                let mut inputs = vec![first.0];
                let mut replies = vec![first.1];
                while inputs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok((input, reply)) => {
                            inputs.push(input);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let run = handle(inputs);
                let answer = async move {
                    let outputs = run.await;
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        let _ = reply.send(output);
                    }
                    drop(slot);
                };
                if parallel > 1 {
                    tokio::spawn(answer);
                } else {
                    answer.await;
                }
            }
        });
        Self { tx }
    }

    /// Hands `input` to the next batch and waits for its answer; `None` when the task is gone.
    pub async fn call(&self, input: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((input, reply)).await.ok()?;
        answer.await.ok()
    }
}

/// Answers a batch whose transaction failed. A database that is down fails every request of the
/// batch alike (503) at once; any other error may be one request's fault, so each is tried on its
/// own and its neighbours still go through.
pub async fn answer_each<I, T, F, Fut>(
    inputs: &[I],
    error: crate::store::StoreError,
    alone: F,
) -> Vec<crate::store::StoreResult<T>>
where
    F: Fn(&I) -> Fut,
    Fut: Future<Output = crate::store::StoreResult<T>>,
{
    use crate::store::StoreError;
    match error {
        StoreError::Unavailable(reason) => inputs
            .iter()
            .map(|_| Err(StoreError::Unavailable(reason.clone())))
            .collect(),
        error if inputs.len() <= 1 => vec![Err(error)],
        error => {
            tracing::warn!(%error, count = inputs.len(), "a batch failed; trying its requests one by one");
            let mut out = Vec::with_capacity(inputs.len());
            for input in inputs {
                out.push(alone(input).await);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::start(move |inputs: Vec<u32>| {
            seen.lock().unwrap().push(inputs.len());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                inputs.into_iter().map(|i| i * 2).collect::<Vec<_>>()
            }
        });
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer, Some(i * 2));
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.len() < 50, "calls were not batched: {sizes:?}");
    }
}
