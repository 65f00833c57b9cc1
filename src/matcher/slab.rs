//! An immutable array that is either owned or a view into a memory-mapped compiled set.
//!
//! The matcher's tables are flat arrays of plain integers, so a compiled set can carry them as
//! they are in memory and a scan can use them in place: start-up then costs a checksum and a
//! bounds check of the tables, not a rebuild of a million-entry hash map.

use std::sync::Arc;

use bytemuck::Pod;

/// What a mapped slab borrows from: a memory-mapped compiled set, or (in tests and the fuzz
/// harness) an aligned buffer.
pub type Backing = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A read-only `[T]`, owned or borrowed from a mapping that it keeps alive.
pub struct Slab<T: Pod> {
    inner: Inner<T>,
}

enum Inner<T: Pod> {
    Owned(Vec<T>),
    Mapped {
        // Field order matters only for clarity: the pointer is never used after `_map` drops,
        // because both drop together with the slab.
        ptr: *const T,
        len: usize,
        _map: Backing,
    },
}

// SAFETY: a mapped slab is an immutable view into a private read-only mapping that it owns a
// reference to; sharing or sending it is as safe as sharing `&[T]` of a `Vec<T>`.
unsafe impl<T: Pod + Sync> Sync for Slab<T> {}
unsafe impl<T: Pod + Send + Sync> Send for Slab<T> {}

impl<T: Pod> Slab<T> {
    pub fn owned(v: Vec<T>) -> Slab<T> {
        Slab { inner: Inner::Owned(v) }
    }

    /// A view of `bytes` (which must lie inside `map`) as `[T]`; `None` when the bytes are
    /// misaligned for `T` or not a whole number of `T`.
    pub fn mapped(map: &Backing, bytes: &[u8]) -> Option<Slab<T>> {
        let whole: &[u8] = (**map).as_ref();
        let base = whole.as_ptr() as usize;
        let at = bytes.as_ptr() as usize;
        if at < base || at + bytes.len() > base + whole.len() {
            return None;
        }
        let s: &[T] = bytemuck::try_cast_slice(bytes).ok()?;
        Some(Slab { inner: Inner::Mapped { ptr: s.as_ptr(), len: s.len(), _map: map.clone() } })
    }

    /// Bytes of heap this slab owns (mapped pages are the page cache's).
    pub fn heap_bytes(&self) -> usize {
        match &self.inner {
            Inner::Owned(v) => v.capacity() * std::mem::size_of::<T>(),
            Inner::Mapped { .. } => 0,
        }
    }
}

impl<T: Pod> std::ops::Deref for Slab<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Owned(v) => v,
            // SAFETY: `ptr..ptr+len` was checked at construction to lie inside the backing
            // bytes, aligned for `T`; they are never written and live as long as `self` (the
            // Arc). A backing hands out the same bytes each time (a mapping, a buffer).
            // `T: Pod` means any bytes are a valid `T`.
            Inner::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

impl<T: Pod> Default for Slab<T> {
    fn default() -> Self {
        Slab::owned(Vec::new())
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slab[{}]", self.len())
    }
}
