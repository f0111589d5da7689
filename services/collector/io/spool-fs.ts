import * as nodeFs from 'node:fs';

/**
 * The file-system calls the spool and its lock make: a narrow port, so that io tests can make
 * one call fail (an fdatasync that reports EIO, a crash between two steps) without a broken disk.
 */
export type SpoolFs = Pick<
  typeof nodeFs,
  | 'closeSync'
  | 'fdatasync'
  | 'fdatasyncSync'
  | 'fstatSync'
  | 'fsyncSync'
  | 'ftruncateSync'
  | 'linkSync'
  | 'mkdirSync'
  | 'openSync'
  | 'readdirSync'
  | 'readFileSync'
  | 'readSync'
  | 'renameSync'
  | 'statSync'
  | 'unlinkSync'
  | 'writeFileSync'
  | 'writeSync'
>;

export const nodeSpoolFs: SpoolFs = nodeFs;
