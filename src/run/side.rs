//! A second thread with a current-thread runtime of its own, started once per process, for
//! work of a run that shares nothing with the run's other checks while it runs (the control
//! plane's reads). The run's futures are joined on one thread (src/main.rs); on a 50-target
//! run that thread is busy from the first lookups to the report, while the other core is idle
//! for a third of the time. The EC2 reads (their own TLS handshakes, signing and XML) are ~7% of
//! the run's instructions: on this thread they no longer delay the data plane's checks.
//!
//! Only self-contained work goes here: a request handed over on the run's thread (the TLS
//! checks' connections) would wake the other thread on every event, which cost more than the
//! split saved when the targets' calls were tried here (benches/findings.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The side thread's queue; None when the thread or its runtime could not be started.
static SIDE: OnceLock<Option<mpsc::UnboundedSender<Job>>> = OnceLock::new();

fn queue() -> Option<&'static mpsc::UnboundedSender<Job>> {
    SIDE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let (jobs, mut next) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("vpce-probe-side".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = next.recv().await {
                        tokio::spawn(job);
                    }
                })
            })
            .ok()?;
        Some(jobs)
    })
    .as_ref()
}

/// `work`'s output, computed on the side thread (on the caller's thread when there is none).
/// None only if `work` panicked.
pub async fn run<F>(work: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (done, output) = oneshot::channel();
    let job: Job = Box::pin(async move {
        let _ = done.send(work.await);
    });
    match queue() {
        Some(jobs) => {
            if let Err(mpsc::error::SendError(job)) = jobs.send(job) {
                job.await;
            }
        }
        None => job.await,
    }
    output.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_side_thread_and_its_output_comes_back() {
        let caller = std::thread::current().id();
        let (thread, name) = run(async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let me = std::thread::current();
            (me.id(), me.name().map(str::to_string))
        })
        .await
        .expect("output");
        assert_ne!(thread, caller);
        assert_eq!(name.as_deref(), Some("vpce-probe-side"));
        // The same thread serves the next run's work.
        let again = run(async { std::thread::current().id() }).await;
        assert_eq!(again, Some(thread));
    }

    #[tokio::test]
    async fn work_that_panics_gives_none() {
        let out: Option<u8> = run(async { panic!("a bug in the work") }).await;
        assert_eq!(out, None);
    }
}
