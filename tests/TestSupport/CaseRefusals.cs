using System.Collections.Concurrent;
using TorchSharp.Modules;
using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;

namespace PerSampleGrads.Tests;

/// <summary>
/// Catalogue cases a method refuses by design, decided by the module types the case's model holds (not by its id), so
/// that the tests that iterate the catalogue ask it only the others (the refusals themselves are tested in
/// SignatureTests): the functional engine has no batched forward for TorchSharp's native Transformer layers (no
/// managed children to give per-sample copies; the hook engine re-runs them per sample), and the clipping method hooks
/// only <c>Module&lt;Tensor, Tensor&gt;</c> layers with the samples in dimension 0 (not EmbeddingBag,
/// MultiheadAttention, the recurrent layers or the Transformer layers).
/// </summary>
public static class CaseRefusals
{
    private static readonly Type[] NativeTransformerLayers =
        [typeof(TransformerEncoderLayer), typeof(TransformerDecoderLayer)];

    private static readonly Type[] NotForClipping =
    [
        .. NativeTransformerLayers, typeof(EmbeddingBag), typeof(MultiheadAttention), typeof(LSTM), typeof(GRU),
        typeof(RNN), typeof(LSTMCell), typeof(GRUCell), typeof(RNNCell),
    ];

    private static readonly ConcurrentDictionary<string, IReadOnlySet<Type>> ModuleTypes = new();

    /// <summary>Whether the functional engine refuses the catalogue case <paramref name="caseId"/>.</summary>
    public static bool Functional(string caseId) => Holds(caseId, NativeTransformerLayers);

    /// <summary>Whether the clipping method refuses the catalogue case <paramref name="caseId"/>.</summary>
    public static bool Clipping(string caseId) => Holds(caseId, NotForClipping);

    /// <summary>The catalogue's cases the functional engine takes.</summary>
    public static IEnumerable<GradientCase> ForFunctional(IEnumerable<GradientCase> cases) =>
        cases.Where(c => !Functional(c.Id));

    // The module types of the case's model, built once per id.
    private static bool Holds(string caseId, Type[] types) => ModuleTypes.GetOrAdd(caseId, id =>
    {
        TestSettings.RequireTorch();
        using var model = CaseCatalogue.Get(id).Build();
        return ModelInspection.AllModules(model).Select(m => m.Module.GetType()).ToHashSet();
    }).Overlaps(types);
}
