//! Architecture support. Only x86-64 exists; everything above this layer
//! reaches the hardware through the functions re-exported here.

pub mod x86;
