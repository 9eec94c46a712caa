//! What can go wrong in the bridge, in terms the API maps one-to-one onto HTTP answers.

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("{0}")]
    Invalid(String),
    #[error("lease data is {0} bytes; at most 32768 are allowed")]
    DataTooLarge(usize),
    #[error("no pool named {0:?}")]
    UnknownPool(String),
    #[error("{0}")]
    Conflict(String),
    #[error("every number of pool {0:?} is leased or cooling down")]
    PoolExhausted(String),
    #[error("no current lease for this number")]
    Unknown,
    #[error("the lease for this number has expired")]
    Expired,
    #[error("{0}")]
    Forbidden(String),
    #[error("no such lease")]
    NoSuchLease,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for BridgeError {
    fn from(e: sqlx::Error) -> Self {
        BridgeError::Internal(e.into())
    }
}

pub type Result<T> = std::result::Result<T, BridgeError>;
