//! EcrCompose: get an MFA session from AWS STS, log in to Amazon ECR and push
//! the images of a docker compose project, from PowerShell through a C ABI.
//!
//! The core operations are plain async functions with typed requests and
//! results ([`session`], [`login`], [`push`]); [`ffi`] only converts JSON to and
//! from them.

pub mod aws;
pub mod compose;
pub mod distribution;
pub mod docker_config;
pub mod error;
pub mod events;
pub mod ffi;
pub mod http;
pub mod login;
pub mod operation;
pub mod plan;
pub mod push;
pub mod registry;
pub mod repositories;
pub mod secret;
pub mod source;
pub mod session;

pub use error::{EcrStatus, Error, Result};
