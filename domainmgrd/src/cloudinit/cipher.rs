//! EVE's encrypted user data (`IsCipher`, EVE's `cipher` and `evetpm` packages): the
//! controller encrypts an `EncryptionBlock` protobuf whose `protectedUserData` is the user data
//! (base64), with AES-256-CFB under a key both sides derive by ECDH on P-256: the device's
//! ECDH private key times the public key of the controller certificate the config's cipher
//! context names (by its SHA-256 hash), the key being SHA-256 of the shared point's X and Y
//! (32 bytes each). The clear text must hash to `ClearTextHash`.
//!
//! Key material, read at each decryption (it may appear after the daemon starts):
//! - the device key: a PEM file holding the P-256 private key (SEC1, as EVE writes
//!   `/persist/certs/ecdh.key.pem` under a `PRIVATE KEY` label, or PKCS#8). A key held in a
//!   TPM (EVE's `ECDHZGen`) cannot be used: such devices are not supported.
//! - the controller certificates: zedagent's `ControllerCert` topic, subscribed over EVE's
//!   pubsub as EVE's domainmgr subscribes to it (keyed by the hex of the hash; `Cert` is the
//!   PEM, base64); else (files mode, or a certificate not published) a directory of
//!   `<hex of the hash>.json` in that shape, or `<hex>.pem` files.

use std::path::{Path, PathBuf};

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

use crate::eve::DomainConfig;

/// EVE's soft ECDH key of the device (without a TPM).
pub const DEFAULT_DEVICE_KEY: &str = "/persist/certs/ecdh.key.pem";
/// zedagent's `ControllerCert` checkpoints under EVE's default run root.
pub const DEFAULT_CONTROLLER_CERT_DIR: &str = "/run/zedagent/ControllerCert";

/// eve-api's `KEA_ECDH`.
const KEA_ECDH: i32 = 1;
/// eve-api's `SA_AES_256_CFB`.
const SA_AES_256_CFB: i32 = 1;

/// Where the keys that decrypt `IsCipher` user data are.
#[derive(Debug, Clone)]
pub struct CipherKeys {
    /// The device's ECDH private key (PEM).
    pub device_key: PathBuf,
    /// The controller certificates, by hash, as files.
    pub controller_certs: PathBuf,
    /// zedagent's `ControllerCert` topic, when subscribed (pubsub mode): looked in first.
    pub controller_topic: Option<std::sync::Arc<crate::agent::Topic>>,
}

impl Default for CipherKeys {
    fn default() -> Self {
        CipherKeys {
            device_key: DEFAULT_DEVICE_KEY.into(),
            controller_certs: DEFAULT_CONTROLLER_CERT_DIR.into(),
            controller_topic: None,
        }
    }
}

/// eve-api's `EncryptionBlock`, the one field a domain's user data is in.
#[derive(Clone, PartialEq, prost::Message)]
struct EncryptionBlock {
    #[prost(string, tag = "5")]
    protected_user_data: String,
}

/// The clear user data (base64, as the clear field carries it) of an `IsCipher` config; the
/// error says what is missing or wrong, never anything of the data.
pub(super) fn decrypt_user_data(config: &DomainConfig, keys: &CipherKeys) -> Result<String, String> {
    if !config.cipher_error.is_empty() {
        return Err(format!("the cipher block is not ready: {}", config.cipher_error));
    }
    let b64 = |field: &str, v: &Option<String>| -> Result<Vec<u8>, String> {
        let text = v.as_deref().unwrap_or_default();
        base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("{field} is not base64 ({e})"))
    };
    let data = b64("pubsub-large-CipherData", &config.cipher_data)?;
    if data.is_empty() {
        return Err("no CipherData to decrypt".into());
    }
    let context = config.cipher_context.as_ref().ok_or("no CipherContext")?;
    if context.key_exchange_scheme != KEA_ECDH {
        return Err(format!("CipherContext.KeyExchangeScheme {} is not ECDH (1)", context.key_exchange_scheme));
    }
    if context.encryption_scheme != SA_AES_256_CFB {
        return Err(format!("CipherContext.EncryptionScheme {} is not AES-256-CFB (1)", context.encryption_scheme));
    }
    let iv = b64("InitialValue", &config.initial_value)?;
    let iv: [u8; 16] = iv.try_into().map_err(|v: Vec<u8>| format!("InitialValue has {} bytes, not 16", v.len()))?;
    let cert_hash = b64("CipherContext.ControllerCertHash", &context.controller_cert_hash)?;
    let published = keys.controller_topic.as_ref().and_then(|t| t.get(&hex(&cert_hash)));
    let controller = controller_key(published, &keys.controller_certs, &hex(&cert_hash))?;
    let device = device_key(&keys.device_key)?;

    let key = shared_key(&device, &controller);
    let mut clear = data;
    cfb_mode::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into()).decrypt(&mut clear);
    let want = b64("ClearTextHash", &config.clear_text_hash)?;
    if want.is_empty() || Sha256::digest(&clear).as_slice() != want.as_slice() {
        return Err("the decrypted data does not match ClearTextHash (wrong keys?)".into());
    }
    let block = <EncryptionBlock as prost::Message>::decode(clear.as_slice())
        .map_err(|e| format!("the decrypted data is not an EncryptionBlock ({e})"))?;
    Ok(block.protected_user_data)
}

/// SHA-256 of the ECDH shared point's coordinates, each 32 bytes big-endian (EVE's
/// `Sha256FromECPoint`).
fn shared_key(secret: &p256::SecretKey, public: &p256::PublicKey) -> [u8; 32] {
    let point = (public.to_projective() * *secret.to_nonzero_scalar()).to_affine();
    let encoded = point.to_encoded_point(false);
    // Uncompressed: 0x04, X, Y.
    Sha256::digest(&encoded.as_bytes()[1..]).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a key or certificate file of ours (small, regular: never a FIFO).
fn read_small(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err(format!("the {what} {} is not a regular file under 1 MiB", path.display()));
    }
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

/// The device's ECDH private key.
fn device_key(path: &Path) -> Result<p256::SecretKey, String> {
    let text = read_small(path, "device key")?;
    let bad = |why: &str| format!("the device key {} {why}", path.display());
    let (_, der) = pem_rfc7468::decode_vec(&text).map_err(|_| bad("is not PEM"))?;
    // EVE writes SEC1 under the label `PRIVATE KEY`; take PKCS#8 too.
    p256::SecretKey::from_sec1_der(&der)
        .or_else(|_| {
            use p256::pkcs8::DecodePrivateKey;
            p256::SecretKey::from_pkcs8_der(&der)
        })
        .map_err(|_| bad("is not a P-256 private key"))
}

/// The PEM of a `ControllerCert` object (EVE's JSON: `Cert`, base64); `what` names it.
fn cert_of_json(text: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("{what}: not JSON ({e})"))?;
    let cert = value.get("Cert").and_then(|c| c.as_str()).ok_or(format!("{what}: no Cert"))?;
    base64::engine::general_purpose::STANDARD.decode(cert).map_err(|e| format!("{what}: Cert is not base64 ({e})"))
}

/// The public key of the controller certificate whose hash is `hash_hex`: the first
/// certificate of the chain `published` in zedagent's topic, else in its file under `dir`.
fn controller_key(published: Option<Vec<u8>>, dir: &Path, hash_hex: &str) -> Result<p256::PublicKey, String> {
    if hash_hex.is_empty() {
        return Err("CipherContext.ControllerCertHash is empty".into());
    }
    let json = dir.join(format!("{hash_hex}.json"));
    let pem = if let Some(text) = published {
        cert_of_json(&text, &format!("ControllerCert {hash_hex}"))?
    } else if json.exists() {
        let text = read_small(&json, "controller certificate")?;
        cert_of_json(&text, &json.display().to_string())?
    } else {
        let file = dir.join(format!("{hash_hex}.pem"));
        if !file.exists() {
            return Err(format!("no controller certificate {hash_hex} in {} (.json or .pem)", dir.display()));
        }
        read_small(&file, "controller certificate")?
    };
    let chain = x509_cert::Certificate::load_pem_chain(&pem)
        .map_err(|e| format!("controller certificate {hash_hex}: not PEM certificates ({e})"))?;
    let first = chain.first().ok_or(format!("controller certificate {hash_hex}: no certificate"))?;
    let spki = &first.tbs_certificate.subject_public_key_info;
    p256::PublicKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
        .map_err(|_| format!("controller certificate {hash_hex}: not a P-256 key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eve::CipherContext;
    use aes::cipher::AsyncStreamCipher;

    // Made with openssl for these tests: a self-signed controller certificate and its key, and
    // a device key written as EVE writes it (SEC1 under `PRIVATE KEY`).
    const CONTROLLER_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgTCCASegAwIBAgIURJm/Oa/5mfGqMAG/tyyHT7J1FE8wCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKY29udHJvbGxlcjAgFw0yNjEyMDQxMjMxMzVaGA8yMTI2MTEx
MDEyMzEzNVowFTETMBEGA1UEAwwKY29udHJvbGxlcjBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABPmmhafpld5pY2UQpGm0Oyj9esnWPknpc171Domlg35eGnj59Mar
6NNhef9XMhAaqTCZ9m9u/r+69uj8xB31tYujUzBRMB0GA1UdDgQWBBR3b+TGCQ0B
/rmyY+EH8AG+t7jehjAfBgNVHSMEGDAWgBR3b+TGCQ0B/rmyY+EH8AG+t7jehjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQD70rL1lGpItEH1qX9n
BnNYECv+heouQBpA/Kevi1vrEAIgeHKhjBVoACGvkVH6GtmJPIsmaZZhc0e9oICh
ZGvO3Jo=
-----END CERTIFICATE-----
";
    const CONTROLLER_KEY_SEC1: &str = "MHcCAQEEIPRMozfJa90gJnMK3C9KR9qcvyVHuHvv4eS/Vg0+tkgcoAoGCCqGSM49AwEHoUQDQgAE+aaFp+mV3mljZRCkabQ7KP16ydY+SelzXvUOiaWDfl4aePn0xqvo02F5/1cyEBqpMJn2b27+v7r26PzEHfW1iw==";
    const DEVICE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MHcCAQEEIAT9WnzmT/sAet+uacORtS5UL9uVPF9ZeqOuyaX3XL/toAoGCCqGSM49
AwEHoUQDQgAERhjIYPw5sqsXifqNFCEDKAhBXlKesSNYoerBngbRsFB1BTqKh2jy
aYbInsGsUSsYeRZp5jCwVkpXhri8GhydZw==
-----END PRIVATE KEY-----
";
    const CERT_HASH: [u8; 4] = [0xca, 0xfe, 0x00, 0x01];

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// What the controller sends: the user data encrypted for the device, from the controller's
    /// side of the exchange (its private key, the device's public key).
    fn encrypted(user_data_b64: &str) -> DomainConfig {
        let controller = p256::SecretKey::from_sec1_der(
            &base64::engine::general_purpose::STANDARD.decode(CONTROLLER_KEY_SEC1).unwrap(),
        )
        .unwrap();
        let (_, der) = pem_rfc7468::decode_vec(DEVICE_KEY.as_bytes()).unwrap();
        let device_public = p256::SecretKey::from_sec1_der(&der).unwrap().public_key();
        let key = shared_key(&controller, &device_public);
        let clear = prost::Message::encode_to_vec(&EncryptionBlock { protected_user_data: user_data_b64.into() });
        let iv = [7u8; 16];
        let mut data = clear.clone();
        cfb_mode::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into()).encrypt(&mut data);
        DomainConfig {
            is_cipher: true,
            cipher_data: Some(b64(&data)),
            initial_value: Some(b64(&iv)),
            clear_text_hash: Some(b64(&Sha256::digest(&clear))),
            cipher_context: Some(CipherContext {
                key_exchange_scheme: KEA_ECDH,
                encryption_scheme: SA_AES_256_CFB,
                controller_cert_hash: Some(b64(&CERT_HASH)),
                ..CipherContext::default()
            }),
            ..DomainConfig::default()
        }
    }

    fn keys(dir: &Path) -> CipherKeys {
        std::fs::write(dir.join("ecdh.key.pem"), DEVICE_KEY).unwrap();
        std::fs::create_dir_all(dir.join("ControllerCert")).unwrap();
        let checkpoint = serde_json::json!({"HashAlgo": 1, "Type": 1, "Cert": b64(CONTROLLER_CERT.as_bytes()), "CertHash": b64(&CERT_HASH)});
        std::fs::write(dir.join("ControllerCert/cafe0001.json"), checkpoint.to_string()).unwrap();
        CipherKeys {
            device_key: dir.join("ecdh.key.pem"),
            controller_certs: dir.join("ControllerCert"),
            controller_topic: None,
        }
    }

    #[test]
    fn decrypts_what_the_controller_encrypted_for_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(dir.path());
        let c = encrypted("I2Nsb3VkLWNvbmZpZwo=");
        assert_eq!(decrypt_user_data(&c, &keys).unwrap(), "I2Nsb3VkLWNvbmZpZwo=");
        // zedagent's ControllerCert topic, as subscribed in pubsub mode, before any file.
        let checkpoint = std::fs::read(dir.path().join("ControllerCert/cafe0001.json")).unwrap();
        let topic =
            crate::agent::Topic::published(Path::new("/run/zedagent"), "ControllerCert", &[("cafe0001", checkpoint)]);
        let from_topic = CipherKeys {
            controller_certs: dir.path().join("nowhere"),
            controller_topic: Some(std::sync::Arc::new(topic)),
            ..keys.clone()
        };
        assert_eq!(decrypt_user_data(&c, &from_topic).unwrap(), "I2Nsb3VkLWNvbmZpZwo=");
        // A PEM certificate file instead of zedagent's checkpoint.
        std::fs::remove_file(dir.path().join("ControllerCert/cafe0001.json")).unwrap();
        std::fs::write(dir.path().join("ControllerCert/cafe0001.pem"), CONTROLLER_CERT).unwrap();
        assert_eq!(decrypt_user_data(&c, &keys).unwrap(), "I2Nsb3VkLWNvbmZpZwo=");
    }

    #[test]
    fn errors_say_what_is_missing_or_wrong_and_nothing_of_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(dir.path());
        let c = encrypted("c2VjcmV0");
        let missing = CipherKeys { device_key: dir.path().join("nope.pem"), ..keys.clone() };
        let e = decrypt_user_data(&c, &missing).unwrap_err();
        assert!(e.starts_with("cannot read the device key ") && e.contains("nope.pem"), "{e}");
        let mut other = c.clone();
        other.cipher_context.as_mut().unwrap().controller_cert_hash = Some(b64(&[1, 2]));
        let e = decrypt_user_data(&other, &keys).unwrap_err();
        assert!(e.starts_with("no controller certificate 0102 in "), "{e}");
        let mut tampered = c.clone();
        tampered.clear_text_hash = Some(b64(&[0; 32]));
        let e = decrypt_user_data(&tampered, &keys).unwrap_err();
        assert!(e.contains("does not match ClearTextHash"), "{e}");
        let mut not_ready = c.clone();
        not_ready.cipher_error = "no cipher context".into();
        assert!(decrypt_user_data(&not_ready, &keys).unwrap_err().contains("not ready"));
        let mut no_context = c;
        no_context.cipher_context = None;
        assert_eq!(decrypt_user_data(&no_context, &keys).unwrap_err(), "no CipherContext");
    }
}
