// The peer of benches/peer.rs: node `oidc-provider` (OpenID Certified) issuing
// client-credentials access tokens, configured as close to Portcullis as it goes: EdDSA-signed
// JWT access tokens, a client secret in HTTP Basic auth, keep-alive. It keeps tokens in its
// in-memory adapter and writes no audit record (Portcullis commits one durable audit event per
// token); the comparison states this next to its figures.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET. Prints "listening" once it accepts connections.
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const jwk = (alg, key) => ({ ...key.export({ format: 'jwk' }), alg, use: 'sig', kid: alg });
const ed = crypto.generateKeyPairSync('ed25519').privateKey;
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk('EdDSA', ed), jwk('RS256', rsa)] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:portcullis:bench',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: 'urn:portcullis:bench',
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'EdDSA' } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log('listening'));
