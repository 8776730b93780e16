//! The atomics the ring protocol uses: `std`'s normally, `loom`'s under `--cfg loom` so the
//! seqlock and wake-up protocols can be model-checked over ordinary memory.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};
