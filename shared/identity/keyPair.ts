import nacl from 'tweetnacl';

/** An Ed25519 identity. The client id is the public key in hex. */
export interface Identity {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  clientId: string;
}

export function identityFromSecretKey(secretKey: Uint8Array): Identity {
  const pair = nacl.sign.keyPair.fromSecretKey(secretKey);
  return {
    publicKey: pair.publicKey,
    secretKey: pair.secretKey,
    clientId: Buffer.from(pair.publicKey).toString('hex'),
  };
}

export function generateIdentity(): Identity {
  return identityFromSecretKey(nacl.sign.keyPair().secretKey);
}
