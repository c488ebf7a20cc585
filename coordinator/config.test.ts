import { parseCoordinatorConfig } from './config';

describe('coordinator config', () => {
  it('uses defaults, then environment, then flags, and freezes the result', () => {
    const defaults = parseCoordinatorConfig({}, {});
    expect(defaults).toMatchObject({ host: '127.0.0.1', port: 8080, backend: 'auto', dbName: 'tributary' });
    expect(defaults.mongodbUri).toBeUndefined();
    expect(Object.isFrozen(defaults)).toBe(true);
    const env = { TRIBUTARY_PORT: '9000', MONGODB_URI: 'mongodb://127.0.0.1:27017', TRIBUTARY_BACKEND: 'cpu' };
    expect(parseCoordinatorConfig({}, env)).toMatchObject({ port: 9000, mongodbUri: 'mongodb://127.0.0.1:27017', backend: 'cpu' });
    expect(parseCoordinatorConfig({ port: 0, backend: undefined }, env)).toMatchObject({ port: 0, backend: 'cpu' });
  });

  it('rejects bad values with CONFIG_INVALID naming the option', () => {
    expect(() => parseCoordinatorConfig({}, { TRIBUTARY_PORT: 'eighty' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/port/) }));
    expect(() => parseCoordinatorConfig({ backend: 'tpu' as never }, {})).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/backend/) }));
    expect(() => parseCoordinatorConfig({ port: 70_000 }, {})).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
