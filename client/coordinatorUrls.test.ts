import { coordinatorUrlsOf } from './coordinatorUrls';

describe('coordinatorUrlsOf', () => {
  it('takes one URL (a coordinator or a load balancer) as it is', () => {
    expect(coordinatorUrlsOf('http://lb:8080')).toEqual({ url: 'http://lb:8080' });
  });

  it("splits a cluster's nodes into the first to dial and the others, dropping blanks", () => {
    expect(coordinatorUrlsOf(' http://n1:1, http://n2:2 ,,http://n3:3 ')).toEqual({
      url: 'http://n1:1',
      alternativeUrls: ['http://n2:2', 'http://n3:3'],
    });
  });

  it('refuses a value with no URL with CONFIG_INVALID', () => {
    expect(() => coordinatorUrlsOf(' , ')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
