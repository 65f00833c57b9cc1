//! Starting a load early: the one hint every look-ahead on the hot path gives (the capture
//! readers, the connection table, the indicator tables), with its `unsafe`, in one place.

/// Starts loading the cache line that holds `p`, into every level of the cache. A hint: it
/// never faults, whatever the address, and it is a no-op where this target has no such
/// instruction here.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
