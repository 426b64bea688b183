//! How an idle worker knows to look for jobs again: a timer that always leaves itself armed, and
//! optionally a bell that a push in the same process rings.
//!
//! apalis' `IntervalStrategy` replaces an expired timer with a new one without polling it, so
//! the new one holds no waker. When the queue fetch that was in flight comes back empty in that
//! same wake-up, nothing is left to wake the worker: it sat idle while jobs waited (seen in the
//! process tests: a worker that took none of 40 runs, a run left WAITING for minutes).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis::prelude::{PollSnapshot, PollStrategy};
use tokio::sync::{Notify, futures::OwnedNotified};

pub struct EveryInterval {
    interval: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// A bell that also wakes the worker, and the wait for its next ring.
    bell: Option<(Arc<Notify>, Pin<Box<OwnedNotified>>)>,
}

impl EveryInterval {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            timer: Box::pin(tokio::time::sleep(interval)),
            bell: None,
        }
    }

    /// Also wakes the worker when `bell` rings (`Notify::notify_one`: a ring while the worker
    /// is busy is kept for its next look, never lost).
    pub fn or_when(mut self, bell: Arc<Notify>) -> Self {
        let rung = Box::pin(bell.clone().notified_owned());
        self.bell = Some((bell, rung));
        self
    }
}

impl PollStrategy for EveryInterval {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        if let Some((bell, rung)) = &mut self.bell
            && rung.as_mut().poll(cx).is_ready()
        {
            // Wait for the next ring, registered now like the timer below.
            *rung = Box::pin(bell.clone().notified_owned());
            let _ = rung.as_mut().poll(cx);
            return Poll::Ready(Some(()));
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let next = tokio::time::Instant::now() + self.interval;
                self.timer.as_mut().reset(next);
                // Arm the next tick now: this wake-up may end without another poll here.
                let _ = self.timer.as_mut().poll(cx);
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// After a tick, the next one wakes the worker even if nothing polls the timer between.
    #[tokio::test]
    async fn every_tick_arms_the_next() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut timer = EveryInterval::new(Duration::from_millis(50));
        let snapshot = PollSnapshot::default();
        assert!(timer.poll_drive(&mut cx, &snapshot).is_pending());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(timer.poll_drive(&mut cx, &snapshot).is_ready());
        // Not polled again: the next tick must still wake.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }

    /// A ring wakes the worker long before the tick; a ring while nothing waits is kept.
    #[tokio::test]
    async fn a_ring_wakes_before_the_tick() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let bell = Arc::new(Notify::new());
        let mut timer = EveryInterval::new(Duration::from_secs(3600)).or_when(bell.clone());
        let snapshot = PollSnapshot::default();
        assert!(timer.poll_drive(&mut cx, &snapshot).is_pending());
        bell.notify_one();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "the ring wakes the worker"
        );
        assert!(timer.poll_drive(&mut cx, &snapshot).is_ready());
        assert!(timer.poll_drive(&mut cx, &snapshot).is_pending());
        // Rung twice while the worker was busy: a look (or two) follows, then it waits again.
        bell.notify_one();
        bell.notify_one();
        let looks = (0..3)
            .take_while(|_| timer.poll_drive(&mut cx, &snapshot).is_ready())
            .count();
        assert!((1..=2).contains(&looks), "{looks} looks");
    }
}
