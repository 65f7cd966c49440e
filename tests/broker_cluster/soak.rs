//! The soak: thousands of jobs through two gateways and three workers while workers, a
//! gateway and broker nodes are killed and restarted at random.
