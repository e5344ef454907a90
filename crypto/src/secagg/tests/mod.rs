//! Protocol-level tests: whole rounds in memory, with dropouts and bad messages.

mod adversary;
mod end_to_end;
mod grinding;
mod harness;
mod rejections;
mod uniformity;
