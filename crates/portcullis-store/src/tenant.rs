//! The tenant: created once (signing key, master-key check, bootstrap token, first event in one
//! transaction) or loaded with the master key proved right; signing-key rotation and reload.

use super::*;

/// What the tenant holds after [`Store::initialise_tenant`].
pub struct Tenant {
    pub created: bool,
    pub signing_key: ServerKey,
    /// Present only on the start that created the tenant: shown once, stored as a hash.
    pub bootstrap_token: Option<Zeroizing<String>>,
}

const KEY_CHECK_AD: &str = "tenant:key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"portcullis master key check v1";
/// How long a bootstrap token stays valid.
pub const BOOTSTRAP_TOKEN_LIFETIME: time::Duration = time::Duration::hours(24);

impl Store {
    /// Creates the tenant on first start (signing key, key check, bootstrap token, and the
    /// `tenant.initialised` event in one transaction) or loads it, proving the master key right.
    /// Either way the chain's head is then checkpointed (if it is not already), so a tenant's
    /// chain is covered from its first event and the tail a crash left is covered before
    /// anything new is written: more than one event with no checkpoint at all is tampering.
    pub async fn initialise_tenant(
        &self,
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> Result<Tenant> {
        for _ in 0..3 {
            if let Some(key) = self.load_tenant(master).await? {
                self.set_server_key(key.clone());
                self.write(Change::ForceCheckpoint, vec![]).await?;
                return Ok(Tenant {
                    created: false,
                    signing_key: key,
                    bootstrap_token: None,
                });
            }
            let signing = SigningKey::generate(&mut rand::rngs::OsRng);
            let key_id = format!(
                "k-{}",
                &hex::encode(signing.verifying_key().as_bytes())[..16]
            );
            let token = crypto::random_token();
            let change = Change::InitialiseTenant(crate::changes::NewTenant {
                created_at_us: micros(now),
                key_check: master.seal(KEY_CHECK_AD, KEY_CHECK_PLAINTEXT),
                key_id: key_id.clone(),
                public_key: signing.verifying_key().as_bytes().to_vec(),
                sealed_private_key: master
                    .seal(&format!("signing_key:{key_id}"), signing.as_bytes()),
                bootstrap_token_hash: crypto::token_hash(&token),
                bootstrap_expires_at_us: micros(now + BOOTSTRAP_TOKEN_LIFETIME),
            });
            let event = NewAuditEvent::new("system", "tenant.initialised", "tenant").details(
                serde_json::json!({"signing_key_id": key_id, "bootstrap_token_expires_at": (now + BOOTSTRAP_TOKEN_LIFETIME).unix_timestamp()}),
            );
            match self.write(change, vec![event]).await {
                Ok(_) => {
                    let key = ServerKey {
                        key_id,
                        key: Arc::new(signing),
                    };
                    self.set_server_key(key.clone());
                    self.write(Change::ForceCheckpoint, vec![]).await?;
                    return Ok(Tenant {
                        created: true,
                        signing_key: key,
                        bootstrap_token: Some(token),
                    });
                }
                // Another replica initialised it first: load what it wrote.
                Err(StoreError::Conflict(_) | StoreError::CommitFailed(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(
            "tenant initialisation kept racing".into(),
        ))
    }

    async fn load_tenant(&self, master: &MasterKey) -> Result<Option<ServerKey>> {
        let row = on_pool!(&self.backend, pool => {
            sqlx::query("SELECT key_check FROM tenant WHERE id = 1").fetch_optional(pool).await?
                .map(|r| r.try_get::<Vec<u8>, _>("key_check")).transpose()?
        });
        let Some(check) = row else { return Ok(None) };
        match master.open(KEY_CHECK_AD, &check) {
            Ok(p) if p.as_slice() == KEY_CHECK_PLAINTEXT => {}
            _ => return Err(StoreError::WrongMasterKey),
        }
        let key_row = on_pool!(&self.backend, pool => {
            let r = sqlx::query("SELECT key_id, sealed_private_key FROM signing_keys WHERE active AND algorithm = 'EdDSA' ORDER BY created_at_us DESC LIMIT 1")
                .fetch_optional(pool).await?;
            match r {
                Some(r) => Some((r.try_get::<String, _>("key_id")?, r.try_get::<Vec<u8>, _>("sealed_private_key")?)),
                None => None,
            }
        });
        let (key_id, sealed) = key_row
            .ok_or_else(|| StoreError::Corrupt("tenant has no active signing key".into()))?;
        let seed = master
            .open(&format!("signing_key:{key_id}"), &sealed)
            .map_err(|_| StoreError::WrongMasterKey)?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("signing key has the wrong length".into()))?;
        Ok(Some(ServerKey {
            key_id,
            key: Arc::new(SigningKey::from_bytes(&seed)),
        }))
    }

    /// Loads the active signing key again (after a rotation here or on another replica) and
    /// makes it the one that signs checkpoints.
    pub async fn reload_signing_key(&self, master: &MasterKey) -> Result<ServerKey> {
        let key = self
            .load_tenant(master)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the tenant is not initialised".into()))?;
        self.set_server_key(key.clone());
        Ok(key)
    }

    /// A new signing key, sealed under the master key, as a change that makes it active in
    /// place of `previous`; the key is returned so the caller can use it once written.
    pub fn new_signing_key(
        master: &MasterKey,
        previous: &str,
        now: OffsetDateTime,
    ) -> (Change, String) {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let key_id = format!(
            "k-{}",
            &hex::encode(signing.verifying_key().as_bytes())[..16]
        );
        let change = Change::RotateSigningKey {
            previous: previous.to_owned(),
            algorithm: "EdDSA".to_owned(),
            key_id: key_id.clone(),
            public_key: signing.verifying_key().as_bytes().to_vec(),
            sealed_private_key: master.seal(&format!("signing_key:{key_id}"), signing.as_bytes()),
            at_us: micros(now),
        };
        (change, key_id)
    }

    fn set_server_key(&self, key: ServerKey) {
        if let Ok(mut k) = self.server_key.write() {
            *k = Some(key);
        }
    }

    /// Whether `token` is an unexpired, unused bootstrap token.
    pub async fn bootstrap_token_valid(&self, token: &str, now: OffsetDateTime) -> Result<bool> {
        let hash = crypto::token_hash(token);
        let found = on_pool!(&self.backend, pool => {
            sqlx::query("SELECT token_hash FROM bootstrap_tokens WHERE token_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2")
                .bind(&hash).bind(micros(now)).fetch_optional(pool).await?
                .map(|r| r.try_get::<Vec<u8>, _>("token_hash")).transpose()?
        });
        Ok(found.is_some_and(|stored| {
            subtle::ConstantTimeEq::ct_eq(stored.as_slice(), hash.as_slice()).into()
        }))
    }

    /// Public keys of every signing key the tenant has had, for checkpoint verification.
    pub async fn verifying_keys(&self) -> Result<HashMap<String, VerifyingKey>> {
        let rows: Vec<(String, Vec<u8>)> = on_pool!(&self.backend, pool => {
            sqlx::query("SELECT key_id, public_key FROM signing_keys WHERE algorithm = 'EdDSA'").fetch_all(pool).await?
                .into_iter().map(|r| Ok((r.try_get("key_id")?, r.try_get("public_key")?)))
                .collect::<Result<_, sqlx::Error>>()?
        });
        let mut out = HashMap::new();
        for (id, pk) in rows {
            let arr: [u8; 32] = pk.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("public key {id} has the wrong length"))
            })?;
            let key = VerifyingKey::from_bytes(&arr)
                .map_err(|_| StoreError::Corrupt(format!("public key {id} is invalid")))?;
            out.insert(id, key);
        }
        Ok(out)
    }
}
