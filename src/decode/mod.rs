//! Wire formats, no policy: pure functions from bytes to views.
