//! Client and pull tests against small stub WeCom servers on 127.0.0.1:0.

mod client;
mod pull;
mod stub;
