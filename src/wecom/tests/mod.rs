//! Client and pull tests against the WeCom simulator (`orgsync_simulator`) on 127.0.0.1:0.

mod client;
mod in_flight;
mod pull;
mod sim;
