/** The TF.js side of Tributary: backend choice, models, weights as named tensors, local training and evaluation. */
export {
  BACKEND_PREFERENCES,
  type BackendPreference,
  type NativePackage,
  nativePackagePath,
  type SelectedBackend,
  selectBackend,
  TFJS_NODE_DIR_ENV,
} from './backend';
export {
  type Conv2DBackpropFilterBackend,
  conv2dBackpropFilterValues,
  type FilterGradGeometry,
  type FilterGradMethod,
  isConv2DBackpropFilterRegistered,
  registerConv2DBackpropFilter,
  restoreStockConv2DBackpropFilter,
  stockConv2DBackpropFilter,
} from './conv2dBackpropFilter';
export {
  hasReluMaxPoolGrad,
  isMaxPoolGradRegistered,
  type MaxPoolGradBackend,
  maxPoolGradValues,
  type PoolGradGeometry,
  type PoolGradOptions,
  RELU_MAX_POOL_GRAD,
  registerMaxPoolGrad,
  stockMaxPoolGrad,
} from './maxPoolGrad';
export {
  CROSS_ENTROPY_GRAD,
  hasStepKernels,
  ROTATED_FILTER,
  registerStepKernels,
  type StepKernelBackend,
} from './stepKernels';
export { assertDatasetFitsModel, batchTensors, type BatchTensors, modelNumClasses } from './datasetTensors';
export { type EvaluateResult, evaluateModel } from './evaluate';
export { correctCount, sparseCategoricalCrossEntropy } from './losses';
export { buildModel, DEFAULT_MLP_HIDDEN_UNITS, initializerSeed, type TfModel } from './modelZoo';
export { trainLocal, type TrainResult } from './train';
export { getNamedWeights, matchWeights, setNamedWeights, weightManifest, weightName } from './weights';
