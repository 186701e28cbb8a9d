//! The block log: records, hash chain, signed anchors, sinks, verify and
//! review.
