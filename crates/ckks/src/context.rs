//! [`Context`]: validated parameters bound to a [`Backend`], with the tables shared by the
//! encoder, the key generator and the evaluator.

use crate::embedding::CanonicalEmbedding;
use crate::error::{CkksError, Result};
use crate::params::{Parameters, ParametersLiteral};
use he_math::{Backend, CpuBackend, ReferenceBackend, Representation, RnsPoly};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Parameters plus a backend over their ring. Cheap to share (`Arc`); every CKKS object
/// is used together with the context it was made with.
pub struct Context<B: Backend> {
    params: Arc<Parameters>,
    backend: Arc<B>,
    embeddings: Mutex<HashMap<usize, Arc<CanonicalEmbedding>>>,
    /// `X^{N/2}` in NTT form over `q_0 … q_L` (multiplication by `i` on the slots).
    monomial_half: B::Poly,
}

impl<B: Backend> std::fmt::Debug for Context<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("backend", &self.backend.name())
            .field("params", &self.params.literal())
            .finish()
    }
}

impl Context<CpuBackend> {
    /// Validates `literal` and binds it to the CPU-SIMD backend.
    ///
    /// # Errors
    /// As [`Parameters::new`].
    pub fn new_cpu(literal: ParametersLiteral) -> Result<Arc<Self>> {
        let params = Arc::new(Parameters::new(literal)?);
        let backend = CpuBackend::new(params.ring())?;
        Self::new(params, backend)
    }
}

impl Context<ReferenceBackend> {
    /// Validates `literal` and binds it to the scalar reference backend.
    ///
    /// # Errors
    /// As [`Parameters::new`].
    pub fn new_reference(literal: ParametersLiteral) -> Result<Arc<Self>> {
        let params = Arc::new(Parameters::new(literal)?);
        let backend = ReferenceBackend::new(params.ring())?;
        Self::new(params, backend)
    }
}

impl<B: Backend> Context<B> {
    /// Binds `params` to `backend`, whose ring must have the same degree and moduli.
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`] if the backend's ring differs.
    pub fn new(params: Arc<Parameters>, backend: B) -> Result<Arc<Self>> {
        let ring = backend.context();
        if ring.n() != params.n() || ring.moduli() != params.ring().moduli() {
            return Err(CkksError::ParameterMismatch(
                "the backend's ring is not the parameters' ring".into(),
            ));
        }
        let n = params.n();
        let q_basis = params.q_basis(params.max_level());
        let mut mono = RnsPoly::zero(n, &q_basis, Representation::Coeff);
        for j in 0..q_basis.len() {
            mono.limb_mut(j)[n / 2] = 1;
        }
        let mut monomial_half = backend.upload(&mono)?;
        backend.forward_ntt(&mut monomial_half)?;
        Ok(Arc::new(Self {
            params,
            backend: Arc::new(backend),
            embeddings: Mutex::new(HashMap::new()),
            monomial_half,
        }))
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The canonical embedding for `slots` slots (cached).
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] unless `slots` is a power of two `≤ N/2`.
    pub fn embedding(&self, slots: usize) -> Result<Arc<CanonicalEmbedding>> {
        let mut cache = self.embeddings.lock().expect("embedding cache poisoned");
        if let Some(e) = cache.get(&slots) {
            return Ok(e.clone());
        }
        let e = Arc::new(CanonicalEmbedding::new(slots, self.params.max_slots())?);
        cache.insert(slots, e.clone());
        Ok(e)
    }

    /// `X^{N/2}` in NTT form over `q_0 … q_level`.
    pub(crate) fn monomial_half(&self, level: usize) -> Result<B::Poly> {
        Ok(self
            .backend
            .select_limbs(&self.monomial_half, &self.params.q_basis(level))?)
    }

    /// Checks `level ≤ L`.
    pub(crate) fn check_level(&self, level: usize) -> Result<()> {
        if level > self.params.max_level() {
            return Err(CkksError::LevelOutOfRange {
                level,
                max: self.params.max_level(),
            });
        }
        Ok(())
    }
}
