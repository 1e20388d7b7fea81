//! Per-tenant rate limiting: a token bucket per tenant (governor), shared by all its keys.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchyard_schemas::ErrorCode;
use uuid::Uuid;

use super::error::ApiError;

pub struct TenantRateLimiter {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

impl TenantRateLimiter {
    /// `per_second` requests a second, with a bucket of twice that for bursts.
    pub fn new(per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes a token for the tenant, or answers 429 with the seconds until the next one.
    pub fn check(&self, tenant: Uuid) -> Result<(), ApiError> {
        self.limiter.check_key(&tenant).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::new(
                ErrorCode::RateLimited,
                "too many requests for this tenant; retry after the time in Retry-After",
            )
            .with_retry_after(seconds.max(1))
        })
    }
}
