//! Decodes arbitrary bytes as every secure-aggregation message
//! (`cohort_crypto::secagg::wire`) and as a Shamir share, and rebuilds secrets
//! from decoded shares.
//!
//! Checks: no parser panics or allocates beyond its input; whatever a parser
//! accepts re-encodes to exactly the bytes it was given (the encodings are
//! canonical, so a relayed message cannot change meaning); `reconstruct` on
//! decoded shares returns a secret or an error, never a panic; and shares that
//! `split` makes at fuzzed x-coordinates rebuild the fuzzed secret.
#![no_main]

use cohort_crypto::secagg::shamir::{self, SECRET_LEN, SHARE_LEN, Share};
use cohort_crypto::secagg::{
    AdvertiseKeys, EncryptedShare, MaskedInput, ShareKeys, UnmaskRequest, UnmaskResponse,
};
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;

/// Parses `$data` as a `$message`; if that works, its encoding must be `$data`.
macro_rules! round_trip {
    ($data:expr, $message:ty) => {
        if let Ok(message) = <$message>::from_bytes($data) {
            assert_eq!(
                &message.to_bytes()[..],
                $data,
                "a decoded {} re-encodes differently",
                stringify!($message)
            );
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(data, AdvertiseKeys);
    round_trip!(data, EncryptedShare);
    round_trip!(data, ShareKeys);
    round_trip!(data, MaskedInput);
    round_trip!(data, UnmaskRequest);
    round_trip!(data, UnmaskResponse);
    round_trip!(data, Share);
    shares(data);
});

/// The bytes as a threshold (first byte) and a run of encoded shares, as the
/// aggregator collects them in unmasking.
fn shares(data: &[u8]) {
    let Some((&threshold, rest)) = data.split_first() else {
        return;
    };
    let threshold = usize::from(threshold % 8);
    let decoded: Vec<Share> = rest
        .chunks_exact(SHARE_LEN)
        .filter_map(|bytes| Share::from_bytes(bytes).ok())
        .collect();
    let _ = shamir::reconstruct(&decoded, threshold);

    // The same bytes as a secret and x-coordinates: a split must rebuild it.
    let Some(secret) = rest.first_chunk::<SECRET_LEN>() else {
        return;
    };
    let xs: Vec<u64> = rest[SECRET_LEN..]
        .chunks_exact(8)
        .map(|x| u64::from_le_bytes(x.try_into().unwrap_or_default()))
        .collect();
    if let Ok(shares) = shamir::split(secret, threshold, &xs, &SystemRandom::new()) {
        assert_eq!(shares.len(), xs.len());
        // Any `threshold` of them will do: take the last ones.
        let subset = &shares[shares.len() - threshold..];
        match shamir::reconstruct(subset, threshold) {
            Ok(rebuilt) => assert_eq!(&*rebuilt, secret, "shares rebuilt another secret"),
            Err(e) => panic!("{threshold} shares of a split did not rebuild it: {e}"),
        }
    }
}
