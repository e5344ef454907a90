//! The byte encoding of the six stages' messages, shared by the coordinator and
//! the nodes so that the two cannot disagree on it.
//!
//! Every message starts with a version byte and a kind byte, then fixed-width
//! big-endian fields; variable parts carry their count or length first. Decoding
//! checks every length against what is left and against a cap before it
//! allocates, refuses trailing bytes, and names the message and the field that was
//! wrong: these bytes come from the network, and a peer may send anything.

use super::error::SecAggError;
use super::messages::{
    AdvertiseKeys, EncryptedShare, GraphCommitments, GraphReveal, GraphReveals, MaskedInput,
    MessageKind, NodeId, PartnerAttestation, RevealedShare, RoundId, ShareKeys, SurvivorList,
    SurvivorSignature, UnmaskRequest, UnmaskResponse,
};
use super::messages::{ID_BYTES, ROUND_BYTES};
use super::shamir::{SHARE_LEN, Share};

/// Version 2 added the consistency check (the survivor list and signatures, and
/// the signatures in the unmask request); version 3 the graph's
/// commit-then-reveal (the commitment in the advert, and its stage's lists).
/// A node of an older version cannot take part.
const VERSION: u8 = 3;

/// Longest signature accepted (a DER ECDSA P-256 signature is at most 72 bytes).
const MAX_SIGNATURE: usize = 512;
/// Longest sealed share pair: nonce, two shares and the tag are well under this.
const MAX_SEALED_SHARE: usize = 1024;
/// Most entries in one list (neighbours, survivors, shares): the largest
/// neighbourhood a round may use.
const MAX_ENTRIES: usize = 1 << 16;

fn kind_byte(kind: MessageKind) -> u8 {
    match kind {
        MessageKind::AdvertiseKeys => 1,
        MessageKind::ShareKeys => 2,
        MessageKind::EncryptedShare => 3,
        MessageKind::MaskedInput => 4,
        MessageKind::UnmaskRequest => 5,
        MessageKind::UnmaskResponse => 6,
        MessageKind::SurvivorList => 7,
        MessageKind::SurvivorSignature => 8,
        MessageKind::GraphCommitments => 9,
        MessageKind::GraphReveal => 10,
        MessageKind::GraphReveals => 11,
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn new(kind: MessageKind, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 2);
        out.push(VERSION);
        out.push(kind_byte(kind));
        Self(out)
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// A length-prefixed byte string.
    fn blob(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).bytes(v)
    }

    fn ids(&mut self, ids: &[NodeId]) -> &mut Self {
        self.u32(ids.len() as u32);
        for id in ids {
            self.u32(id.0);
        }
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

struct Reader<'a> {
    what: MessageKind,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: MessageKind, bytes: &'a [u8]) -> Result<Self, SecAggError> {
        let mut reader = Self { what, rest: bytes };
        let header = reader.take(2, "header")?;
        if header[0] != VERSION {
            return Err(reader.error(format!(
                "encoding version {} is not supported (expected {VERSION})",
                header[0]
            )));
        }
        if header[1] != kind_byte(what) {
            return Err(reader.error(format!("kind byte {} is not a {what}", header[1])));
        }
        Ok(reader)
    }

    fn error(&self, detail: String) -> SecAggError {
        SecAggError::Undecodable {
            what: self.what,
            detail,
        }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], SecAggError> {
        if self.rest.len() < n {
            return Err(self.error(format!(
                "truncated at {field}: {n} bytes needed, {} left",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], SecAggError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u32(&mut self, field: &str) -> Result<u32, SecAggError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &str) -> Result<u64, SecAggError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn round(&mut self) -> Result<RoundId, SecAggError> {
        Ok(RoundId(self.u64("round")?))
    }

    fn node(&mut self, field: &str) -> Result<NodeId, SecAggError> {
        Ok(NodeId(self.u32(field)?))
    }

    /// A count, refused above `max` and above what the remaining bytes could
    /// hold at `min_entry_len` bytes an entry (so no allocation exceeds the input).
    fn count(
        &mut self,
        field: &str,
        max: usize,
        min_entry_len: usize,
    ) -> Result<usize, SecAggError> {
        let n = self.u32(field)? as usize;
        if n > max || n.saturating_mul(min_entry_len) > self.rest.len() {
            return Err(self.error(format!(
                "{field} is {n}; at most {max}, and the {} bytes left hold at most {}",
                self.rest.len(),
                self.rest.len() / min_entry_len.max(1)
            )));
        }
        Ok(n)
    }

    fn blob(&mut self, field: &str, max: usize) -> Result<&'a [u8], SecAggError> {
        let n = self.count(field, max, 1)?;
        self.take(n, field)
    }

    fn ids(&mut self, field: &str) -> Result<Vec<NodeId>, SecAggError> {
        let n = self.count(field, MAX_ENTRIES, 4)?;
        (0..n).map(|_| self.node(field)).collect()
    }

    fn end(&self) -> Result<(), SecAggError> {
        if !self.rest.is_empty() {
            return Err(self.error(format!("{} trailing bytes", self.rest.len())));
        }
        Ok(())
    }
}

impl AdvertiseKeys {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(MessageKind::AdvertiseKeys, self.wire_size() + 4)
            .u64(self.round.0)
            .u32(self.node.0)
            .bytes(&self.mask_public_key)
            .bytes(&self.share_public_key)
            .bytes(&self.graph_commitment)
            .blob(&self.signature)
            .finish()
    }

    /// Parses a key advertisement (its signature is the participant's check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::AdvertiseKeys, bytes)?;
        let message = Self {
            round: r.round()?,
            node: r.node("node")?,
            mask_public_key: r.array("mask public key")?,
            share_public_key: r.array("share public key")?,
            graph_commitment: r.array("graph commitment")?,
            signature: r.blob("signature", MAX_SIGNATURE)?.to_vec(),
        };
        r.end()?;
        Ok(message)
    }
}

/// (node, 32 bytes) pairs, count first.
fn write_tagged(w: &mut Writer, entries: &[(NodeId, [u8; 32])]) {
    w.u32(entries.len() as u32);
    for (node, bytes) in entries {
        w.u32(node.0).bytes(bytes);
    }
}

fn read_tagged(r: &mut Reader<'_>, field: &str) -> Result<Vec<(NodeId, [u8; 32])>, SecAggError> {
    let n = r.count(field, MAX_ENTRIES, ID_BYTES + 32)?;
    (0..n)
        .map(|_| Ok((r.node(field)?, r.array(field)?)))
        .collect()
}

impl GraphCommitments {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(MessageKind::GraphCommitments, self.wire_size());
        w.u64(self.round.0);
        write_tagged(&mut w, &self.commitments);
        w.finish()
    }

    /// Parses a commitment list (whether it is sorted is the participant's check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::GraphCommitments, bytes)?;
        let message = Self {
            round: r.round()?,
            commitments: read_tagged(&mut r, "commitments")?,
        };
        r.end()?;
        Ok(message)
    }
}

impl GraphReveal {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(MessageKind::GraphReveal, self.wire_size())
            .u64(self.round.0)
            .u32(self.node.0)
            .bytes(&self.nonce)
            .finish()
    }

    /// Parses a revealed graph nonce.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::GraphReveal, bytes)?;
        let message = Self {
            round: r.round()?,
            node: r.node("node")?,
            nonce: r.array("nonce")?,
        };
        r.end()?;
        Ok(message)
    }
}

impl GraphReveals {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(MessageKind::GraphReveals, self.wire_size());
        w.u64(self.round.0);
        write_tagged(&mut w, &self.nonces);
        w.finish()
    }

    /// Parses the list of revealed nonces (each is checked against its
    /// commitment by the participant).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::GraphReveals, bytes)?;
        let message = Self {
            round: r.round()?,
            nonces: read_tagged(&mut r, "nonces")?,
        };
        r.end()?;
        Ok(message)
    }
}

impl EncryptedShare {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(MessageKind::EncryptedShare, self.wire_size() + 4)
            .u64(self.round.0)
            .u32(self.from.0)
            .u32(self.to.0)
            .blob(&self.ciphertext)
            .finish()
    }

    /// Parses one sealed share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::EncryptedShare, bytes)?;
        let message = Self {
            round: r.round()?,
            from: r.node("sender")?,
            to: r.node("recipient")?,
            ciphertext: r.blob("ciphertext", MAX_SEALED_SHARE)?.to_vec(),
        };
        r.end()?;
        Ok(message)
    }
}

impl ShareKeys {
    /// The message's encoding; each share is written as its own encoding,
    /// length-prefixed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(
            MessageKind::ShareKeys,
            self.wire_size() + 8 * self.shares.len(),
        );
        w.u64(self.round.0)
            .u32(self.node.0)
            .u32(self.shares.len() as u32);
        for share in &self.shares {
            w.blob(&share.to_bytes());
        }
        w.finish()
    }

    /// Parses a node's key shares, each share as [`EncryptedShare::from_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::ShareKeys, bytes)?;
        let round = r.round()?;
        let node = r.node("node")?;
        let n = r.count("share count", MAX_ENTRIES, 4)?;
        let shares = (0..n)
            .map(|_| EncryptedShare::from_bytes(r.blob("share", MAX_SEALED_SHARE + 64)?))
            .collect::<Result<_, _>>()?;
        r.end()?;
        Ok(Self {
            round,
            node,
            shares,
        })
    }
}

fn write_attestation(w: &mut Writer, attestation: &PartnerAttestation) {
    w.ids(&attestation.partners).blob(&attestation.signature);
}

fn read_attestation(r: &mut Reader<'_>, node: NodeId) -> Result<PartnerAttestation, SecAggError> {
    Ok(PartnerAttestation {
        node,
        partners: r.ids("partners")?,
        signature: r.blob("partners signature", MAX_SIGNATURE)?.to_vec(),
    })
}

impl MaskedInput {
    /// The message's encoding: its fields, the partner list and its signature,
    /// then the packed values to the end.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(MessageKind::MaskedInput, self.wire_size() + 8);
        w.u64(self.round.0).u32(self.node.0).u64(self.len);
        write_attestation(&mut w, &self.partners);
        w.bytes(&self.packed).finish()
    }

    /// The longest encoding of a masked input of `values` values at `bits` bits
    /// (with the most partners and the longest signature accepted): the cap on
    /// what a coordinator reads.
    pub fn max_encoded_len(values: usize, bits: u32) -> usize {
        2 + ROUND_BYTES
            + ID_BYTES
            + 8
            + 4
            + ID_BYTES * MAX_ENTRIES
            + 4
            + MAX_SIGNATURE
            + super::packing::packed_len(values, bits)
    }

    /// Parses a masked input; the packed values are the rest of the bytes (their
    /// length is checked against the round by the aggregator).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::MaskedInput, bytes)?;
        let round = r.round()?;
        let node = r.node("node")?;
        let len = r.u64("value count")?;
        let partners = read_attestation(&mut r, node)?;
        Ok(Self {
            round,
            node,
            len,
            partners,
            packed: r.rest.to_vec(),
        })
    }
}

impl SurvivorList {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(MessageKind::SurvivorList, self.wire_size())
            .u64(self.round.0)
            .u32(self.node.0)
            .ids(&self.survivors)
            .finish()
    }

    /// Parses a survivor list (whether the set is sorted and plausible is the
    /// participant's check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::SurvivorList, bytes)?;
        let message = Self {
            round: r.round()?,
            node: r.node("node")?,
            survivors: r.ids("survivors")?,
        };
        r.end()?;
        Ok(message)
    }
}

impl SurvivorSignature {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(MessageKind::SurvivorSignature, self.wire_size() + 4)
            .u64(self.round.0)
            .u32(self.node.0)
            .blob(&self.signature)
            .finish()
    }

    /// Parses a survivor signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::SurvivorSignature, bytes)?;
        let message = Self {
            round: r.round()?,
            node: r.node("node")?,
            signature: r.blob("signature", MAX_SIGNATURE)?.to_vec(),
        };
        r.end()?;
        Ok(message)
    }
}

impl UnmaskRequest {
    /// The message's encoding; each signature is written as its signer and bytes
    /// (its round is the request's).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(
            MessageKind::UnmaskRequest,
            self.wire_size() + 16 + 8 * (self.signatures.len() + self.attestations.len()),
        );
        w.u64(self.round.0)
            .u32(self.node.0)
            .ids(&self.survivors)
            .ids(&self.dropped)
            .u32(self.signatures.len() as u32);
        for signature in &self.signatures {
            w.u32(signature.node.0).blob(&signature.signature);
        }
        w.u32(self.attestations.len() as u32);
        for attestation in &self.attestations {
            w.u32(attestation.node.0);
            write_attestation(&mut w, attestation);
        }
        w.finish()
    }

    /// Parses an unmask request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::UnmaskRequest, bytes)?;
        let round = r.round()?;
        let node = r.node("node")?;
        let survivors = r.ids("survivors")?;
        let dropped = r.ids("dropped")?;
        let n = r.count("signature count", MAX_ENTRIES, 8)?;
        let signatures = (0..n)
            .map(|_| {
                Ok(SurvivorSignature {
                    round,
                    node: r.node("signer")?,
                    signature: r.blob("signature", MAX_SIGNATURE)?.to_vec(),
                })
            })
            .collect::<Result<_, SecAggError>>()?;
        let n = r.count("attestation count", MAX_ENTRIES, 12)?;
        let attestations = (0..n)
            .map(|_| {
                let owner = r.node("attesting node")?;
                read_attestation(&mut r, owner)
            })
            .collect::<Result<_, SecAggError>>()?;
        r.end()?;
        Ok(Self {
            round,
            node,
            survivors,
            dropped,
            signatures,
            attestations,
        })
    }
}

fn write_revealed(w: &mut Writer, shares: &[RevealedShare]) {
    w.u32(shares.len() as u32);
    for revealed in shares {
        w.u32(revealed.owner.0)
            .bytes(&revealed.share.to_bytes()[..]);
    }
}

fn read_revealed(r: &mut Reader<'_>, field: &str) -> Result<Vec<RevealedShare>, SecAggError> {
    let n = r.count(field, MAX_ENTRIES, 4 + SHARE_LEN)?;
    (0..n)
        .map(|_| {
            let owner = r.node(field)?;
            let share = Share::from_bytes(r.take(SHARE_LEN, field)?)
                .map_err(|e| r.error(format!("{field}: {e}")))?;
            Ok(RevealedShare { owner, share })
        })
        .collect()
}

impl UnmaskResponse {
    /// The message's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(MessageKind::UnmaskResponse, self.wire_size() + 8);
        w.u64(self.round.0).u32(self.node.0);
        write_revealed(&mut w, &self.self_mask_seed_shares);
        write_revealed(&mut w, &self.mask_key_shares);
        w.finish()
    }

    /// Parses an unmask response (whether its shares are the ones asked for is the
    /// aggregator's check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let mut r = Reader::new(MessageKind::UnmaskResponse, bytes)?;
        let message = Self {
            round: r.round()?,
            node: r.node("node")?,
            self_mask_seed_shares: read_revealed(&mut r, "self-mask seed shares")?,
            mask_key_shares: read_revealed(&mut r, "mask key shares")?,
        };
        r.end()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn share(x: u64) -> Share {
        let mut bytes = [0u8; SHARE_LEN];
        bytes[..8].copy_from_slice(&x.to_le_bytes());
        bytes[8] = 7;
        Share::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let advert = AdvertiseKeys {
            round: RoundId(3),
            node: NodeId(1),
            mask_public_key: [1; 32],
            share_public_key: [2; 32],
            graph_commitment: [3; 32],
            signature: vec![9; 70],
        };
        assert_eq!(
            AdvertiseKeys::from_bytes(&advert.to_bytes()).unwrap(),
            advert
        );
        let commitments = GraphCommitments {
            round: RoundId(3),
            commitments: vec![(NodeId(1), [3; 32]), (NodeId(5), [4; 32])],
        };
        assert_eq!(
            GraphCommitments::from_bytes(&commitments.to_bytes()).unwrap(),
            commitments
        );
        let reveal = GraphReveal {
            round: RoundId(3),
            node: NodeId(1),
            nonce: [6; 32],
        };
        assert_eq!(GraphReveal::from_bytes(&reveal.to_bytes()).unwrap(), reveal);
        let reveals = GraphReveals {
            round: RoundId(3),
            nonces: vec![(NodeId(1), [6; 32]), (NodeId(5), [7; 32])],
        };
        assert_eq!(
            GraphReveals::from_bytes(&reveals.to_bytes()).unwrap(),
            reveals
        );
        let sealed = EncryptedShare {
            round: RoundId(3),
            from: NodeId(1),
            to: NodeId(2),
            ciphertext: vec![5; 140],
        };
        let shares = ShareKeys {
            round: RoundId(3),
            node: NodeId(1),
            shares: vec![
                sealed.clone(),
                EncryptedShare {
                    to: NodeId(4),
                    ..sealed
                },
            ],
        };
        assert_eq!(ShareKeys::from_bytes(&shares.to_bytes()).unwrap(), shares);
        let attestation = PartnerAttestation {
            node: NodeId(1),
            partners: vec![NodeId(0), NodeId(2)],
            signature: vec![4; 71],
        };
        let masked = MaskedInput {
            round: RoundId(3),
            node: NodeId(1),
            len: 10,
            partners: attestation.clone(),
            packed: vec![0xAB; 40],
        };
        assert_eq!(MaskedInput::from_bytes(&masked.to_bytes()).unwrap(), masked);
        assert!(MaskedInput::max_encoded_len(10, 32) >= masked.to_bytes().len());
        let request = UnmaskRequest {
            round: RoundId(3),
            node: NodeId(1),
            survivors: vec![NodeId(0), NodeId(2)],
            dropped: vec![NodeId(5)],
            signatures: vec![
                SurvivorSignature {
                    round: RoundId(3),
                    node: NodeId(0),
                    signature: vec![7; 70],
                },
                SurvivorSignature {
                    round: RoundId(3),
                    node: NodeId(2),
                    signature: vec![8; 71],
                },
            ],
            attestations: vec![
                PartnerAttestation {
                    node: NodeId(0),
                    ..attestation.clone()
                },
                attestation,
            ],
        };
        assert_eq!(
            UnmaskRequest::from_bytes(&request.to_bytes()).unwrap(),
            request
        );
        let list = SurvivorList {
            round: RoundId(3),
            node: NodeId(1),
            survivors: vec![NodeId(0), NodeId(1), NodeId(2)],
        };
        assert_eq!(SurvivorList::from_bytes(&list.to_bytes()).unwrap(), list);
        let signature = SurvivorSignature {
            round: RoundId(3),
            node: NodeId(1),
            signature: vec![9; 72],
        };
        assert_eq!(
            SurvivorSignature::from_bytes(&signature.to_bytes()).unwrap(),
            signature
        );
        let response = UnmaskResponse {
            round: RoundId(3),
            node: NodeId(1),
            self_mask_seed_shares: vec![RevealedShare {
                owner: NodeId(0),
                share: share(2),
            }],
            mask_key_shares: vec![RevealedShare {
                owner: NodeId(5),
                share: share(2),
            }],
        };
        assert_eq!(
            UnmaskResponse::from_bytes(&response.to_bytes()).unwrap(),
            response
        );
    }

    #[test]
    fn refuses_wrong_kind_version_truncation_and_trailing_bytes() {
        let request = UnmaskRequest {
            round: RoundId(3),
            node: NodeId(1),
            survivors: vec![NodeId(0)],
            dropped: vec![],
            signatures: vec![],
            attestations: vec![],
        };
        let bytes = request.to_bytes();
        let err = AdvertiseKeys::from_bytes(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("is not a key advertisement"),
            "{err}"
        );
        let mut old = bytes.clone();
        old[0] = 9;
        assert!(
            UnmaskRequest::from_bytes(&old)
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        let err = UnmaskRequest::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut long = bytes.clone();
        long.push(0);
        assert!(
            UnmaskRequest::from_bytes(&long)
                .unwrap_err()
                .to_string()
                .contains("trailing")
        );
        // A count larger than the bytes that follow is refused before allocating.
        let mut huge = bytes[..14].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = UnmaskRequest::from_bytes(&huge).unwrap_err();
        assert!(err.to_string().contains("survivors is 4294967295"), "{err}");
    }

    proptest! {
        /// Decoding arbitrary bytes never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), kind in 1u8..=11) {
            let mut bytes = bytes;
            if bytes.len() >= 2 {
                bytes[0] = VERSION;
                bytes[1] = kind;
            }
            let _ = AdvertiseKeys::from_bytes(&bytes);
            let _ = EncryptedShare::from_bytes(&bytes);
            let _ = ShareKeys::from_bytes(&bytes);
            let _ = MaskedInput::from_bytes(&bytes);
            let _ = SurvivorList::from_bytes(&bytes);
            let _ = SurvivorSignature::from_bytes(&bytes);
            let _ = UnmaskRequest::from_bytes(&bytes);
            let _ = UnmaskResponse::from_bytes(&bytes);
            let _ = GraphCommitments::from_bytes(&bytes);
            let _ = GraphReveal::from_bytes(&bytes);
            let _ = GraphReveals::from_bytes(&bytes);
        }
    }
}
