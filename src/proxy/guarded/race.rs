//! Two futures raced in one task, each polled only when its own waker
//! fired. `tokio::select!` polls every branch at every wake-up of the
//! task: the server's answer would also poll the client's pending read,
//! and the client's next message the server's, one wasted poll of the
//! idle half per message. Here each branch gets a waker of its own that
//! notes which branch it is before it wakes the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Which of the two raced futures finished first, with its output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First<A, B> {
    Left(A),
    Right(B),
}

const LEFT: u8 = 1;
const RIGHT: u8 = 2;

/// What the branches' wakers share with the race: which branches were
/// woken since the race last looked, and the task to wake.
struct Woken {
    branches: AtomicU8,
    task: AtomicWaker,
}

/// The waker of one branch.
struct Branch {
    bit: u8,
    woken: Arc<Woken>,
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.branches.fetch_or(self.bit, Ordering::AcqRel);
        self.woken.task.wake();
    }
}

/// The future of [`race`].
pub(crate) struct Race<A, B> {
    left: A,
    right: B,
    woken: Arc<Woken>,
    left_waker: Waker,
    right_waker: Waker,
}

/// Races `left` against `right`: the output of the first to finish (the
/// other is dropped with the race). Both are polled at the first poll,
/// then each only after its own waker fired; when both were woken, the
/// left one is polled first.
pub(crate) fn race<A, B>(left: A, right: B) -> Race<A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    let woken = Arc::new(Woken {
        branches: AtomicU8::new(LEFT | RIGHT),
        task: AtomicWaker::new(),
    });
    let waker = |bit| {
        Waker::from(Arc::new(Branch {
            bit,
            woken: woken.clone(),
        }))
    };
    Race {
        left_waker: waker(LEFT),
        right_waker: waker(RIGHT),
        left,
        right,
        woken,
    }
}

impl<A, B> Future for Race<A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    type Output = First<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Registered before the bits are taken: a branch woken after the
        // swap wakes this task again.
        this.woken.task.register(cx.waker());
        let branches = this.woken.branches.swap(0, Ordering::AcqRel);
        if branches & LEFT != 0 {
            let mut cx = Context::from_waker(&this.left_waker);
            if let Poll::Ready(out) = Pin::new(&mut this.left).poll(&mut cx) {
                return Poll::Ready(First::Left(out));
            }
        }
        if branches & RIGHT != 0 {
            let mut cx = Context::from_waker(&this.right_waker);
            if let Poll::Ready(out) = Pin::new(&mut this.right).poll(&mut cx) {
                return Poll::Ready(First::Right(out));
            }
        }
        Poll::Pending
    }
}

impl<A, B> Drop for Race<A, B> {
    fn drop(&mut self) {
        // A branch's waker may outlive the race in whatever it registered
        // with; it must not keep the task alive.
        drop(self.woken.task.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    /// A future that counts its polls and is ready once `ready` is set,
    /// keeping the last waker it was given.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<std::sync::atomic::AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
    }

    impl Probe {
        fn new() -> Probe {
            Probe {
                polls: Arc::default(),
                ready: Arc::default(),
                waker: Arc::default(),
            }
        }

        fn handle(&self) -> Probe {
            Probe {
                polls: self.polls.clone(),
                ready: self.ready.clone(),
                waker: self.waker.clone(),
            }
        }

        fn polls(&self) -> usize {
            self.polls.load(Ordering::SeqCst)
        }

        /// Makes it ready and wakes whoever polled it last.
        fn finish(&self) {
            self.ready.store(true, Ordering::SeqCst);
            self.wake();
        }

        fn wake(&self) {
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    impl Future for Probe {
        type Output = usize;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            let polls = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(polls);
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// A waker that counts its wakes.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counting {
        /// A counting task waker, and the count to read.
        fn new() -> (Arc<Counting>, Waker) {
            let task = Arc::new(Counting(AtomicUsize::new(0)));
            (task.clone(), Waker::from(task))
        }

        fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Two probes raced, polled once in `cx` (both pending).
    fn started(cx: &mut Context<'_>) -> (Probe, Probe, Race<Probe, Probe>) {
        let (left, right) = (Probe::new(), Probe::new());
        let mut raced = race(left.handle(), right.handle());
        assert!(Pin::new(&mut raced).poll(cx).is_pending());
        (left, right, raced)
    }

    #[test]
    fn only_the_woken_branch_is_polled() {
        let (task, waker) = Counting::new();
        let mut cx = Context::from_waker(&waker);
        let (left, right, mut raced) = started(&mut cx);
        assert_eq!((left.polls(), right.polls()), (1, 1));

        right.wake();
        assert_eq!(task.wakes(), 1, "the task is woken");
        assert!(Pin::new(&mut raced).poll(&mut cx).is_pending());
        assert_eq!((left.polls(), right.polls()), (1, 2));

        // A poll nobody asked for polls neither.
        assert!(Pin::new(&mut raced).poll(&mut cx).is_pending());
        assert_eq!((left.polls(), right.polls()), (1, 2));

        left.finish();
        assert_eq!(
            Pin::new(&mut raced).poll(&mut cx),
            Poll::Ready(First::Left(2))
        );
        assert_eq!(right.polls(), 2);
    }

    #[test]
    fn both_woken_are_both_polled_left_first() {
        let (_, waker) = Counting::new();
        let mut cx = Context::from_waker(&waker);
        let (left, right, mut raced) = started(&mut cx);
        right.finish();
        left.finish();
        assert_eq!(
            Pin::new(&mut raced).poll(&mut cx),
            Poll::Ready(First::Left(2))
        );
        let (left, right, mut raced) = started(&mut cx);
        right.finish();
        left.wake();
        assert_eq!(
            Pin::new(&mut raced).poll(&mut cx),
            Poll::Ready(First::Right(2))
        );
        assert_eq!(left.polls(), 2);
    }

    #[test]
    fn a_wake_while_a_branch_runs_is_not_lost() {
        // The left branch wakes the right one from inside its own poll,
        // after the race took the woken bits: the task is woken again,
        // and the next poll polls the right one.
        let right = Probe::new();
        let finish_right = right.handle();
        let left_waker: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
        let stored = left_waker.clone();
        let mut polls = 0;
        let left = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 1 {
                *stored.lock().unwrap() = Some(cx.waker().clone());
            } else {
                finish_right.finish();
            }
            Poll::<()>::Pending
        });
        let left = pin!(left);
        let mut raced = race(left, right.handle());
        let (task, waker) = Counting::new();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut raced).poll(&mut cx).is_pending());
        left_waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task.wakes(), 1);
        assert!(Pin::new(&mut raced).poll(&mut cx).is_pending());
        assert_eq!(right.polls(), 1, "not woken when the race looked");
        assert_eq!(task.wakes(), 2, "woken again");
        assert_eq!(
            Pin::new(&mut raced).poll(&mut cx),
            Poll::Ready(First::Right(2))
        );
    }

    #[tokio::test]
    async fn races_real_io_on_the_runtime() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let read = pin!(async {
            let mut buf = [0u8; 4];
            tokio::io::AsyncReadExt::read_exact(&mut b, &mut buf)
                .await
                .map(|_| buf)
        });
        let never = pin!(std::future::pending::<()>());
        let write = async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            tokio::io::AsyncWriteExt::write_all(&mut a, b"ping").await
        };
        let (raced, written) = tokio::join!(race(never, read), write);
        written.unwrap();
        match raced {
            First::Right(Ok(buf)) => assert_eq!(&buf, b"ping"),
            _ => panic!("the read should have won"),
        }
    }
}
