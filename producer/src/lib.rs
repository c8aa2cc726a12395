#![doc = include_str!("../README.md")]

pub mod cli;
pub mod commands;
pub mod serve;
