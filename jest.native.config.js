/**
 * The native TensorFlow suite (CI's last step, after scripts/native-tf.sh): the backend's own tests
 * (*.native.test.ts) and the training suites, on the `tensorflow` backend loaded from
 * $TRIBUTARY_TFJS_NODE_DIR. `npm test` (jest.config.js) skips *.native.test.ts and trains on wasm.
 */
const base = require('./jest.config.js');

if (!process.env.TRIBUTARY_TFJS_NODE_DIR) {
  throw new Error(
    'jest.native.config.js needs TRIBUTARY_TFJS_NODE_DIR: run scripts/native-tf.sh and export what it prints.',
  );
}
process.env.TRIBUTARY_TEST_BACKEND = 'tensorflow';

module.exports = {
  ...base,
  testPathIgnorePatterns: ['/node_modules/'],
  testMatch: [
    '**/*.native.test.ts',
    '<rootDir>/shared/ml/backend.test.ts',
    '<rootDir>/shared/ml/train.test.ts',
    '<rootDir>/shared/ml/trainStep.test.ts',
    '<rootDir>/shared/ml/mnistTraining.test.ts',
  ],
};
