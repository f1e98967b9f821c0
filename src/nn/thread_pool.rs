//! Threads for inference operators: [`for_each_task`] splits one operator over the cores.
//!
//! Why not rayon, which the training loop uses: its idle workers sleep in the kernel, and waking
//! one costs tens of microseconds, more inside a virtual machine, where a batch-1 operator of a
//! MobileNet takes 10–500 µs. Measured on a 2-core VM, rayon made MobileNetV2 *slower* on two
//! threads than on one. Here the workers spin for a while after each task, as XNNPACK's
//! pthreadpool does, so the operators of one inference find them awake; they sleep after
//! [`SPIN`] without work.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// How long an idle worker keeps polling for the next task before it sleeps.
const SPIN: Duration = Duration::from_millis(5);

/// The threads kernels may use, the caller's included: rayon's count (`RAYON_NUM_THREADS` or the
/// cores), so one setting governs training and inference.
pub fn threads() -> usize {
    pool().map_or(1, |p| p.workers + 1)
}

/// Calls `task(i)` for every `i < tasks`, spread over the pool's threads and the caller's, and
/// returns when all have run. Runs them on the caller alone when the pool is busy (a call from
/// inside a task, or another thread's job) or there is one thread. A panic in a task is raised
/// again here, once every thread has stopped using `task`.
pub fn for_each_task(tasks: usize, task: impl Fn(usize) + Sync) {
    let pool = match pool() {
        Some(pool) if tasks > 1 => pool,
        _ => return (0..tasks).for_each(task),
    };
    // A job that panicked poisoned the lock; the pool itself was left consistent.
    let _submitting = match pool.submit.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return (0..tasks).for_each(task),
    };
    pool.run(tasks, &task);
}

/// Calls `task(i, chunk)` for each `chunk_len`-value chunk of `data` (the last may be shorter),
/// spread over the threads as [`for_each_task`].
pub fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    task: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let (len, base) = (data.len(), SharedMut(data.as_mut_ptr()));
    for_each_task(len.div_ceil(chunk_len), |i| {
        let start = i * chunk_len;
        let end = len.min(start + chunk_len);
        // SAFETY: chunk `i` is `start..end` of `data`, which this call borrows mutably;
        // chunks are disjoint and each index runs once.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        task(i, chunk)
    });
}

/// Calls `task(offset, band)` for bands of `out` made of whole `unit`s (`offset` the band's
/// first index): one band when `out` holds fewer than [`PARALLEL_VALUES`], else about four per
/// thread, split as [`for_each_part`] splits. For element-wise operators, whose outputs the
/// next operator reads in the same halves.
pub fn for_each_band<T: Send>(out: &mut [T], unit: usize, task: impl Fn(usize, &mut [T]) + Sync) {
    for_each_band_of(out, unit, bands(out.len(), PARALLEL_VALUES), task)
}

/// The bands for an operator of `values`: one below `from`, else about four per thread.
pub fn bands(values: usize, from: usize) -> usize {
    match values < from {
        true => 1,
        false => threads() * 4,
    }
}

/// [`for_each_band`] in `parts` bands, whatever the size of `out`.
pub fn for_each_band_of<T: Send>(
    out: &mut [T],
    unit: usize,
    parts: usize,
    task: impl Fn(usize, &mut [T]) + Sync,
) {
    let (unit, len) = (unit.max(1), out.len());
    let base = SharedMut(out.as_mut_ptr());
    // A last, partial unit goes with the last band.
    for_each_part(len.div_ceil(unit), parts, |units| {
        let (start, end) = (units.start * unit, len.min(units.end * unit));
        // SAFETY: the parts are disjoint ranges within `out`, which this call borrows
        // mutably, and each runs once.
        let band = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        task(start, band)
    });
}

/// Calls `task(range)` for `parts` consecutive ranges that together cover `0..units`, their
/// lengths at most one apart, spread over the threads as [`for_each_task`]. When `parts` is a
/// multiple of the threads, each thread's share is its own fraction of `0..units`: operators
/// split alike, whatever their grain, so each thread mostly reads what it wrote into its own
/// cache (on a 2-core VM, reading a tensor half the other core wrote cost a quarter of the
/// time of a 14×14 operator).
pub fn for_each_part(units: usize, parts: usize, task: impl Fn(Range<usize>) + Sync) {
    let parts = parts.clamp(1, units.max(1));
    for_each_task(parts, |i| task(units * i / parts..units * (i + 1) / parts));
}

/// Values below which an element-wise operator runs on one thread: handing out tasks costs
/// more.
pub const PARALLEL_VALUES: usize = 1 << 15;

/// A pointer that tasks writing disjoint parts of one buffer share.
pub(crate) struct SharedMut<T>(pub *mut T);

impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}

// SAFETY: the users of a `SharedMut` write disjoint elements (each says why at its use).
unsafe impl<T: Send> Sync for SharedMut<T> {}
unsafe impl<T: Send> Send for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not its field).
    pub fn get(self) -> *mut T {
        self.0
    }
}

fn pool() -> Option<&'static Arc<Pool>> {
    static POOL: OnceLock<Option<Arc<Pool>>> = OnceLock::new();
    POOL.get_or_init(|| Pool::start(rayon::current_num_threads().saturating_sub(1)))
        .as_ref()
}

/// A job's task function, lent to the workers for the job's duration.
type TaskRef = *const (dyn Fn(usize) + Sync);

struct Pool {
    workers: usize,
    /// Held by the thread whose job the pool runs.
    submit: Mutex<()>,
    /// Advanced for each job; a worker that sees it change takes part.
    epoch: AtomicUsize,
    /// The current job's task function, `None` between jobs.
    job: UnsafeCell<Option<TaskRef>>,
    /// Each thread's share of the tasks (the caller's first): the next index to claim, and
    /// one past its last.
    shares: Vec<Share>,
    /// Workers still inside the current job.
    busy: AtomicUsize,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// A thread's share of a job's tasks, on its own cache line.
#[derive(Default)]
#[repr(align(128))]
struct Share {
    next: AtomicUsize,
    end: AtomicUsize,
}

// SAFETY: `job` is written only by the submitter holding `submit` while no worker is busy
// (`busy == 0`), and read by workers only between the epoch's release and their `busy`
// decrement; the task it points to is `Sync`.
unsafe impl Sync for Pool {}
unsafe impl Send for Pool {}

impl Pool {
    fn start(workers: usize) -> Option<Arc<Pool>> {
        if workers == 0 {
            return None;
        }
        let pool = Arc::new(Pool {
            workers,
            submit: Mutex::new(()),
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            shares: (0..=workers).map(|_| Share::default()).collect(),
            busy: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        for i in 0..workers {
            let pool = Arc::clone(&pool);
            let spawned = std::thread::Builder::new()
                .name(format!("petal-kernel-{i}"))
                .spawn(move || pool.work(i + 1));
            if spawned.is_err() {
                // Without its workers the pool would wait for ever: run on the caller alone.
                return None;
            }
        }
        Some(pool)
    }

    /// The submitter's side of a job (it holds `submit`).
    fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        // SAFETY: no worker is busy (the last job waited for all), so none reads `job`. The
        // reference's lifetime is erased; it stays valid because this function returns only
        // after every worker has finished with it (`busy == 0`), panics included.
        unsafe {
            let task: TaskRef = std::mem::transmute::<&(dyn Fn(usize) + Sync), TaskRef>(task);
            *self.job.get() = Some(task);
        }
        let threads = self.shares.len();
        for (t, share) in self.shares.iter().enumerate() {
            share.next.store(tasks * t / threads, Relaxed);
            share.end.store(tasks * (t + 1) / threads, Relaxed);
        }
        self.busy.store(self.workers, Relaxed);
        self.epoch.fetch_add(1, SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            let _guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| self.claim_tasks(task, 0)));
        while self.busy.load(Acquire) > 0 {
            std::hint::spin_loop();
        }
        // SAFETY: every worker is done with the job.
        unsafe { *self.job.get() = None };
        if let Err(panic) = mine {
            resume_unwind(panic);
        }
        if self.panicked.swap(false, Relaxed) {
            panic!("a kernel task panicked on a petal-kernel thread");
        }
    }

    /// Runs `thread`'s share of the tasks, then helps with the others' unclaimed ones. Fixed
    /// shares keep locality: consecutive operators split alike, so each thread mostly reads
    /// what it wrote into its own cache (measured: reading the other core's half made a
    /// following ADD 4× slower here).
    fn claim_tasks(&self, task: &(dyn Fn(usize) + Sync), thread: usize) {
        let threads = self.shares.len();
        for share in (0..threads).map(|i| &self.shares[(thread + i) % threads]) {
            let end = share.end.load(Relaxed);
            loop {
                let i = share.next.fetch_add(1, Relaxed);
                if i >= end {
                    break;
                }
                task(i);
            }
        }
    }

    fn work(&self, thread: usize) {
        // Engine threads flush denormals, as TensorFlow's do (see `denormals`).
        super::denormals::set_on_this_thread();
        let mut seen = 0;
        loop {
            seen = self.wait_for_job(seen);
            // SAFETY: the submitter wrote the job before advancing the epoch (SeqCst) and keeps
            // it, and the task it borrows, until this worker decrements `busy`.
            let job = unsafe { *self.job.get() };
            if let Some(task) = job {
                let task = unsafe { &*task };
                if catch_unwind(AssertUnwindSafe(|| self.claim_tasks(task, thread))).is_err() {
                    self.panicked.store(true, Relaxed);
                }
            }
            self.busy.fetch_sub(1, Release);
        }
    }

    /// Spins until the epoch moves past `seen`, then sleeps; returns the new epoch.
    fn wait_for_job(&self, seen: usize) -> usize {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            let epoch = self.epoch.load(SeqCst);
            if epoch != seen {
                return epoch;
            }
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) && start.elapsed() > SPIN {
                break;
            }
        }
        let mut guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, SeqCst);
        let epoch = loop {
            let epoch = self.epoch.load(SeqCst);
            if epoch != seen {
                break epoch;
            }
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        };
        self.sleepers.fetch_sub(1, SeqCst);
        epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bands cover every value once, start on whole units (a partial unit ends the last),
    /// and part `i` of `n` starts at unit `units × i / n`, so threads split alike.
    #[test]
    fn bands_cover_every_value_once_in_whole_units() {
        for (len, unit, parts) in [(0, 3, 4), (10, 3, 4), (12, 3, 4), (100, 7, 8), (5, 10, 3)] {
            let mut out = vec![0u32; len];
            let starts = Mutex::new(Vec::new());
            for_each_band_of(&mut out, unit, parts, |start, band| {
                starts.lock().unwrap().push((start, band.len()));
                band.iter_mut().for_each(|v| *v += 1);
            });
            assert!(out.iter().all(|&v| v == 1), "{len} by {unit} in {parts}");
            let mut starts = starts.into_inner().unwrap();
            starts.sort();
            let units = len.div_ceil(unit);
            let parts = parts.clamp(1, units.max(1));
            let expected: Vec<usize> = (0..parts).map(|i| units * i / parts * unit).collect();
            let got: Vec<usize> = starts.iter().map(|&(start, _)| start).collect();
            assert_eq!(got, expected, "{len} by {unit} in {parts}");
        }
    }

    #[test]
    fn every_task_runs_once_including_nested_and_concurrent_jobs() {
        for tasks in [0, 1, 2, 3, 17, 1000] {
            let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            for_each_task(tasks, |i| {
                counts[i].fetch_add(1, Relaxed);
                for_each_task(2, |_| {});
            });
            assert!(counts.iter().all(|c| c.load(Relaxed) == 1));
        }
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        for_each_task(5, |i| {
                            total.fetch_add(i, Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Relaxed), 4 * 200 * 10);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_still_works() {
        let result = catch_unwind(|| for_each_task(8, |i| assert!(i != 5, "task 5 fails")));
        assert!(result.is_err());
        let ran = AtomicUsize::new(0);
        for_each_task(8, |_| {
            ran.fetch_add(1, Relaxed);
        });
        assert_eq!(ran.load(Relaxed), 8);
    }
}
