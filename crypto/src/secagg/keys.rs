//! A node's per-round X25519 keys, and what is derived from them.
//!
//! Each node makes two key pairs per round: the mask pair, whose ECDH with a
//! neighbour gives their pairwise mask seed, and the share pair, whose ECDH gives the
//! key that seals the Shamir shares sent to that neighbour. They are X25519 keys from
//! x25519-dalek, not ring: the mask secret key must be exported to be secret-shared,
//! and ring's agreement keys cannot be. Derivation is HKDF-SHA256 (ring) over the ECDH
//! output with the round and both node ids as context; sealing is ring's
//! ChaCha20-Poly1305. Secret keys are zeroized on drop and never printed.

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::SecureRandom;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::error::SecAggError;
use super::messages::{NodeId, RoundId};
use super::prg::{PrgSeed, SEED_LEN};

const HKDF_SALT: &[u8] = b"cohort-secagg/v1";
const NONCE_LEN: usize = aead::NONCE_LEN;

/// Bytes a sealed share adds to its plaintext: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;

/// One X25519 key pair.
pub struct KeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    fn generate(rng: &dyn SecureRandom) -> Result<Self, SecAggError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill(&mut bytes[..])
            .map_err(|_| SecAggError::Crypto("system randomness unavailable"))?;
        Ok(Self::from_secret_bytes(&bytes))
    }

    /// The pair of a (rebuilt) secret key.
    pub(crate) fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        let secret = StaticSecret::from(*bytes);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public key, as advertised.
    pub fn public_key(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The secret key's bytes, to be secret-shared.
    pub(crate) fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// X25519 with a peer's public key, refusing a low-order peer key (whose shared
    /// secret would be all zeros, known to everyone).
    fn agree(
        &self,
        peer_public: &[u8; 32],
        round: RoundId,
        peer: NodeId,
    ) -> Result<Zeroizing<[u8; 32]>, SecAggError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer_public));
        if !shared.was_contributory() {
            return Err(SecAggError::BadPublicKey {
                round,
                node: peer,
                reason: "a low-order X25519 point",
            });
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    /// The seed of the pairwise mask between `node` (this key's owner) and `peer`:
    /// HKDF(ECDH), with the ids in increasing order so both ends derive the same seed.
    pub(crate) fn pairwise_mask_seed(
        &self,
        peer_public: &[u8; 32],
        round: RoundId,
        node: NodeId,
        peer: NodeId,
    ) -> Result<PrgSeed, SecAggError> {
        let shared = self.agree(peer_public, round, peer)?;
        let (low, high) = if node < peer {
            (node, peer)
        } else {
            (peer, node)
        };
        let mut seed = PrgSeed::from_bytes([0; SEED_LEN]);
        derive(
            &shared,
            b"pairwise-mask",
            round,
            low,
            high,
            SeedLen,
            |okm| okm.fill(seed.as_mut_bytes()),
        )?;
        Ok(seed)
    }

    /// The X25519 secret this key's owner shares with `peer` for sealing shares:
    /// both directions' keys derive from it, so a node agrees once per
    /// neighbour and round, not once to seal and again to open.
    pub(crate) fn share_secret(
        &self,
        peer_public: &[u8; 32],
        round: RoundId,
        peer: NodeId,
    ) -> Result<ShareSecret, SecAggError> {
        Ok(ShareSecret(self.agree(peer_public, round, peer)?))
    }
}

/// The ECDH secret two neighbours' share keys agree on in a round (see
/// [`KeyPair::share_secret`]); zeroized on drop, never printed.
pub(crate) struct ShareSecret(Zeroizing<[u8; 32]>);

impl fmt::Debug for ShareSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareSecret(<redacted>)")
    }
}

impl ShareSecret {
    /// The ChaCha20-Poly1305 key for shares sent `from` → `to`: one key per direction
    /// and round.
    fn key(&self, round: RoundId, from: NodeId, to: NodeId) -> Result<LessSafeKey, SecAggError> {
        let mut key = None;
        derive(
            &self.0,
            b"share-encryption",
            round,
            from,
            to,
            &aead::CHACHA20_POLY1305,
            |okm| {
                key = Some(LessSafeKey::new(UnboundKey::from(okm)));
                Ok(())
            },
        )?;
        key.ok_or(SecAggError::Crypto("HKDF expand of a share key"))
    }

    /// Seals `plaintext` sent `from` → `to`. A fresh random nonce per message:
    /// nothing breaks even if a caller seals twice under one key.
    pub(crate) fn seal(
        &self,
        round: RoundId,
        from: NodeId,
        to: NodeId,
        plaintext: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, SecAggError> {
        let key = self.key(round, from, to)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| SecAggError::Crypto("system randomness unavailable"))?;
        let mut sealed = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(share_aad(round, from, to)),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(|_| SecAggError::Crypto("ChaCha20-Poly1305 seal"))?;
        sealed.extend_from_slice(tag.as_ref());
        Ok(sealed)
    }

    /// Opens a share sealed `from` → `to`. Any change to the ciphertext, the
    /// round or either id fails authentication.
    pub(crate) fn open(
        &self,
        round: RoundId,
        from: NodeId,
        to: NodeId,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecAggError> {
        let failed = SecAggError::ShareAuthentication { round, from, to };
        if sealed.len() < SEAL_OVERHEAD {
            return Err(failed);
        }
        let key = self.key(round, from, to)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let mut buffer = Zeroizing::new(sealed[NONCE_LEN..].to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(share_aad(round, from, to)),
                &mut buffer,
            )
            .map_err(|_| failed)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex::encode(self.public.as_bytes()))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A node's two key pairs for one round.
#[derive(Debug)]
pub struct RoundKeys {
    /// For pairwise mask seeds; its secret key is secret-shared.
    pub(crate) mask: KeyPair,
    /// For sealing shares.
    pub(crate) share: KeyPair,
}

impl RoundKeys {
    /// Two fresh key pairs from `rng`.
    ///
    /// Fails with [`SecAggError::Crypto`] if the randomness is unavailable.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, SecAggError> {
        Ok(Self {
            mask: KeyPair::generate(rng)?,
            share: KeyPair::generate(rng)?,
        })
    }

    /// The mask pair's public key, advertised for the pairwise mask seeds.
    pub fn mask_public_key(&self) -> [u8; 32] {
        self.mask.public_key()
    }

    /// The share pair's public key, advertised for sealing shares.
    pub fn share_public_key(&self) -> [u8; 32] {
        self.share.public_key()
    }
}

struct SeedLen;

impl hkdf::KeyType for SeedLen {
    fn len(&self) -> usize {
        SEED_LEN
    }
}

/// HKDF-SHA256: extract from the ECDH output, expand with the purpose, the round and
/// two node ids as info.
fn derive<L: hkdf::KeyType>(
    shared: &[u8; 32],
    purpose: &[u8],
    round: RoundId,
    first: NodeId,
    second: NodeId,
    len: L,
    use_okm: impl FnOnce(hkdf::Okm<'_, L>) -> Result<(), ring::error::Unspecified>,
) -> Result<(), SecAggError> {
    let round = round.0.to_be_bytes();
    let first = first.0.to_be_bytes();
    let second = second.0.to_be_bytes();
    let info: [&[u8]; 4] = [purpose, &round, &first, &second];
    hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT)
        .extract(shared)
        .expand(&info, len)
        .and_then(use_okm)
        .map_err(|_| SecAggError::Crypto("HKDF-SHA256 derivation"))
}

fn share_aad(round: RoundId, from: NodeId, to: NodeId) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(b"cohort-secagg/sh");
    aad[16..24].copy_from_slice(&round.0.to_be_bytes());
    aad[24..28].copy_from_slice(&from.0.to_be_bytes());
    aad[28..].copy_from_slice(&to.0.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    fn pair() -> (RoundKeys, RoundKeys) {
        let rng = SystemRandom::new();
        (
            RoundKeys::generate(&rng).unwrap(),
            RoundKeys::generate(&rng).unwrap(),
        )
    }

    #[test]
    fn both_ends_derive_the_same_mask_seed() {
        let (u, v) = pair();
        let (a, b) = (NodeId(4), NodeId(9));
        let round = RoundId(2);
        let from_u = u
            .mask
            .pairwise_mask_seed(&v.mask_public_key(), round, a, b)
            .unwrap();
        let from_v = v
            .mask
            .pairwise_mask_seed(&u.mask_public_key(), round, b, a)
            .unwrap();
        assert_eq!(from_u.as_bytes(), from_v.as_bytes());
        let next_round = u
            .mask
            .pairwise_mask_seed(&v.mask_public_key(), RoundId(3), a, b)
            .unwrap();
        assert_ne!(from_u.as_bytes(), next_round.as_bytes());
    }

    #[test]
    fn sealed_shares_open_only_for_the_addressee_and_round() {
        let (u, v) = pair();
        let rng = SystemRandom::new();
        let (a, b) = (NodeId(1), NodeId(2));
        let secret = |keys: &RoundKeys, peer_public: &[u8; 32], round, peer| {
            keys.share.share_secret(peer_public, round, peer).unwrap()
        };
        let sealed = secret(&u, &v.share_public_key(), RoundId(5), b)
            .seal(RoundId(5), a, b, b"secret share", &rng)
            .unwrap();
        let opened = secret(&v, &u.share_public_key(), RoundId(5), a)
            .open(RoundId(5), a, b, &sealed)
            .unwrap();
        assert_eq!(&opened[..], b"secret share");

        let refused = |round, from, to, bytes: &[u8]| {
            secret(&v, &u.share_public_key(), round, from)
                .open(round, from, to, bytes)
                .is_err()
        };
        assert!(refused(RoundId(4), a, b, &sealed));
        assert!(refused(RoundId(5), b, a, &sealed));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(refused(RoundId(5), a, b, &tampered));
        assert!(refused(RoundId(5), a, b, &sealed[..10]));
    }

    #[test]
    fn low_order_keys_and_debug_output_are_handled() {
        let (u, _) = pair();
        assert!(matches!(
            u.mask
                .pairwise_mask_seed(&[0u8; 32], RoundId(1), NodeId(1), NodeId(2)),
            Err(SecAggError::BadPublicKey { .. })
        ));
        let printed = format!("{u:?}");
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains(&hex::encode(*u.mask.secret_bytes())));
    }
}
