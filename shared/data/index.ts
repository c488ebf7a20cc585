/** Datasets: the in-memory type, CSV / JSON-lines loading validated against a job's input spec, MNIST, and partitioners. */
export {
  classCounts,
  concatDatasets,
  type Dataset,
  DatasetBuilder,
  exampleSize,
  selectExamples,
  sliceDataset,
} from './dataset';
export { createCsvReader, type DatasetReader, parseCsvDataset } from './csvLoader';
export { CsvParser, type CsvRecordHandler, parseCsv } from './csvParser';
export { datasetToCsv, datasetToJsonl, featureColumnNames, float32ToString } from './csvWriter';
export { createJsonlReader, parseJsonlDataset } from './jsonlLoader';
export {
  DEFAULT_MAX_DATASET_BYTES,
  type DatasetFormat,
  formatFromPath,
  loadDatasetFile,
  type LoadDatasetOptions,
  parseDatasetText,
} from './loadDataset';
export { loadMnist, type LoadMnistOptions, MNIST_SIZE } from './mnist';
export {
  partitionDirichlet,
  partitionIid,
  partitionIndicesDirichlet,
  partitionIndicesIid,
  partitionIndicesShards,
  partitionShards,
} from './partition';
export {
  createRng,
  deriveSeed,
  dirichletSample,
  gammaSample,
  normalSample,
  permutation,
  type Rng,
  shuffleInPlace,
} from './random';
