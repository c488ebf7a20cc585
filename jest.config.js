/** Jest runs TypeScript through swc (fast, no type check); `npm run build` is the type check. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/coordinator', '<rootDir>/client', '<rootDir>/shared', '<rootDir>/contracts', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // The native TensorFlow suite runs with jest.native.config.js, after scripts/native-tf.sh.
  testPathIgnorePatterns: ['/node_modules/', '\\.native\\.test\\.ts$'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  testTimeout: 60000,
  maxWorkers: 2,
};
