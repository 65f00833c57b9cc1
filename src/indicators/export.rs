//! Writing sets for other sensors.
