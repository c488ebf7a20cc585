import { BACKEND_PREFERENCES, type BackendPreference } from '../../shared/ml/backend';

/**
 * The TF.js backend the shared/ml training suites run on: $TRIBUTARY_TEST_BACKEND when set
 * (jest.native.config.js sets 'tensorflow'), else wasm, the backend users without native TensorFlow get.
 */
export function testBackend(): Exclude<BackendPreference, 'auto'> {
  const name = process.env.TRIBUTARY_TEST_BACKEND ?? 'wasm';
  if (name === 'auto' || !BACKEND_PREFERENCES.includes(name as BackendPreference)) {
    throw new Error(
      `TRIBUTARY_TEST_BACKEND=${name}: expected one of ${BACKEND_PREFERENCES.filter((b) => b !== 'auto')}`,
    );
  }
  return name as Exclude<BackendPreference, 'auto'>;
}
