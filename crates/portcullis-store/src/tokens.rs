//! Reads for the token service: client secrets, client public keys, consents, revoked
//! tokens, signing keys.
//! (Writes are [`crate::Change`]s through the writer.)

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A client secret as stored (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecret {
    pub id: String,
    pub principal_id: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub revoked_at_us: Option<i64>,
}

/// A live public key of a service account (`private_key_jwt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub principal_id: String,
    pub key_id: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// Consent to one application permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub permission: String,
    pub granted_by: String,
    pub granted_at_us: i64,
}

/// A public signing key with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSigningKey {
    pub key_id: String,
    /// `EdDSA` (the raw Ed25519 key), `ES256` (the uncompressed P-256 point) or `RS256`
    /// (the PKCS#1 `RSAPublicKey` DER).
    pub algorithm: String,
    pub public_key: Vec<u8>,
    pub active: bool,
    pub created_at_us: i64,
}

impl Store {
    /// The CIDRs a service account may authenticate from (a JSON array), if it is restricted.
    pub async fn client_networks(&self, principal_id: &str) -> Result<Option<String>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT cidrs FROM client_networks WHERE principal_id = $1")
                .bind(principal_id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(r.try_get("cidrs")?)),
                None => Ok(None),
            }
        })
    }

    /// The live secret with this hash, if any: `(secret id, principal id)`.
    pub async fn client_secret_by_hash(&self, hash: &[u8]) -> Result<Option<(String, String)>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT id, principal_id FROM client_secrets WHERE secret_hash = $1 AND revoked_at_us IS NULL")
                .bind(hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some((r.try_get("id")?, r.try_get("principal_id")?))),
                None => Ok(None),
            }
        })
    }

    /// Live client secrets of a principal, oldest first.
    pub async fn client_secrets_of(&self, principal_id: &str) -> Result<Vec<ClientSecret>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT id, principal_id, created_by, created_at_us, revoked_at_us FROM client_secrets WHERE principal_id = $1 AND revoked_at_us IS NULL ORDER BY created_at_us")
                .bind(principal_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ClientSecret {
                    id: r.try_get("id")?,
                    principal_id: r.try_get("principal_id")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                    revoked_at_us: r.try_get("revoked_at_us")?,
                });
            }
            Ok(out)
        })
    }

    /// The live public key `key_id` of a principal, if any.
    pub async fn client_key(&self, principal_id: &str, key_id: &str) -> Result<Option<ClientKey>> {
        on_pool!(&self.backend, pool => {
            let row = sqlx::query("SELECT principal_id, key_id, algorithm, public_key, created_by, created_at_us FROM client_keys WHERE principal_id = $1 AND key_id = $2 AND revoked_at_us IS NULL")
                .bind(principal_id).bind(key_id).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(Some(ClientKey {
                    principal_id: r.try_get("principal_id")?,
                    key_id: r.try_get("key_id")?,
                    algorithm: r.try_get("algorithm")?,
                    public_key: r.try_get("public_key")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Live public keys of a principal, oldest first.
    pub async fn client_keys_of(&self, principal_id: &str) -> Result<Vec<ClientKey>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT principal_id, key_id, algorithm, public_key, created_by, created_at_us FROM client_keys WHERE principal_id = $1 AND revoked_at_us IS NULL ORDER BY created_at_us, key_id")
                .bind(principal_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ClientKey {
                    principal_id: r.try_get("principal_id")?,
                    key_id: r.try_get("key_id")?,
                    algorithm: r.try_get("algorithm")?,
                    public_key: r.try_get("public_key")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                });
            }
            Ok(out)
        })
    }

    pub async fn consents_of(&self, principal_id: &str) -> Result<Vec<Consent>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT permission, granted_by, granted_at_us FROM consents WHERE principal_id = $1 ORDER BY permission")
                .bind(principal_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(Consent {
                    permission: r.try_get("permission")?,
                    granted_by: r.try_get("granted_by")?,
                    granted_at_us: r.try_get("granted_at_us")?,
                });
            }
            Ok(out)
        })
    }

    pub async fn token_revoked(&self, jti: &str) -> Result<bool> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query("SELECT jti FROM revoked_tokens WHERE jti = $1").bind(jti).fetch_optional(pool).await?.is_some())
        })
    }

    /// Every signing key the tenant has had (public halves), newest first.
    pub async fn public_signing_keys(&self) -> Result<Vec<PublicSigningKey>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT key_id, public_key, active, created_at_us, algorithm FROM signing_keys ORDER BY created_at_us DESC")
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(PublicSigningKey {
                    key_id: r.try_get("key_id")?,
                    algorithm: r.try_get("algorithm")?,
                    public_key: r.try_get("public_key")?,
                    active: r.try_get("active")?,
                    created_at_us: r.try_get("created_at_us")?,
                });
            }
            Ok(out)
        })
    }

    /// The active key of each algorithm: `(algorithm, key_id, sealed private key)`, the
    /// private key sealed under the master key with `signing_key:{key_id}`.
    pub async fn sealed_active_signing_keys(&self) -> Result<Vec<(String, String, Vec<u8>)>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT algorithm, key_id, sealed_private_key FROM signing_keys WHERE active ORDER BY created_at_us DESC")
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get("algorithm")?, r.try_get("key_id")?, r.try_get("sealed_private_key")?));
            }
            Ok(out)
        })
    }
}
