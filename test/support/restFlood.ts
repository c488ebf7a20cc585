/**
 * An attacker in its own process, so that /v1/health is timed against the coordinator's load only:
 *   restFlood.ts <url> uploads <jobId> <secretKeyHex>   two concurrent 96 MB validation-set uploads, signed by that key
 *   restFlood.ts <url> specs <count> <secretKeyHex>     <count> 1.9 MB job specs at once, half anonymous, half signed
 * Prints {"event":"ready"} once its payloads are built, fires 200 ms later, then prints
 * {"event":"done","answers":["<status> <code>", ...]} and exits.
 */
import { identityFromSecretKey } from '../../shared/identity/keyPair';
import { signHttpRequest } from '../../shared/identity/httpSignature';

async function answer(res: Response): Promise<string> {
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
  return `${res.status} ${body.error?.code ?? 'ok'}`;
}

async function main(): Promise<void> {
  const [url, mode, arg, keyHex] = process.argv.slice(2);
  const identity = identityFromSecretKey(Buffer.from(keyHex, 'hex'));
  let fire: () => Promise<string[]>;
  if (mode === 'uploads') {
    const target = `${url}/v1/jobs/${arg}/validation-set`;
    const body = Buffer.alloc(96 * 1024 * 1024, 0x31);
    const headers = [0, 1].map(() => signHttpRequest(identity, { method: 'PUT', url: target, body }));
    fire = () =>
      Promise.all(
        headers.map((h) =>
          fetch(target, { method: 'PUT', body, headers: { ...h, 'content-type': 'text/csv' } }).then(answer),
        ),
      );
  } else {
    const blob = 'x'.repeat(1_900_000);
    const body = JSON.stringify({
      name: 'flood',
      model: { kind: 'layers-json', topology: { class_name: 'Sequential', config: { blob } } },
      input: { shape: [2], numClasses: 2 },
      rounds: 1,
    });
    const requests = Array.from({ length: Number(arg) }, (_, i) => ({
      'content-type': 'application/json',
      ...(i % 2 === 1 ? signHttpRequest(identity, { method: 'POST', url: `${url}/v1/jobs`, body }) : {}),
    }));
    fire = () =>
      Promise.all(requests.map((headers) => fetch(`${url}/v1/jobs`, { method: 'POST', body, headers }).then(answer)));
  }
  process.stdout.write(`${JSON.stringify({ event: 'ready' })}\n`);
  await new Promise((r) => setTimeout(r, 200));
  const answers = await fire();
  process.stdout.write(`${JSON.stringify({ event: 'done', answers })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${String(err?.stack ?? err)}\n`);
  process.exit(1);
});
