using System.Collections.Concurrent;
using TorchSharp.Modules;
using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;

namespace PerSampleGrads.Tests;

/// <summary>
/// Catalogue cases a method refuses by design, decided by the module types the case's model holds (not by its id), so
/// that the tests that iterate the catalogue ask it only the others (the refusals themselves are tested in
/// SignatureTests): the clipping method hooks only <c>Module&lt;Tensor, Tensor&gt;</c> layers with the samples in
/// dimension 0 (not EmbeddingBag, MultiheadAttention, the recurrent layers or the Transformer layers).
/// </summary>
public static class CaseRefusals
{
    private static readonly Type[] NotForClipping =
    [
        typeof(TransformerEncoderLayer), typeof(TransformerDecoderLayer), typeof(EmbeddingBag),
        typeof(MultiheadAttention), typeof(LSTM), typeof(GRU),
        typeof(RNN), typeof(LSTMCell), typeof(GRUCell), typeof(RNNCell),
    ];

    private static readonly ConcurrentDictionary<string, IReadOnlySet<Type>> ModuleTypes = new();

    /// <summary>Whether the clipping method refuses the catalogue case <paramref name="caseId"/>.</summary>
    public static bool Clipping(string caseId) => Holds(caseId, NotForClipping);

    // The module types of the case's model, built once per id.
    private static bool Holds(string caseId, Type[] types) => ModuleTypes.GetOrAdd(caseId, id =>
    {
        TestSettings.RequireTorch();
        using var model = CaseCatalogue.Get(id).Build();
        return ModelInspection.AllModules(model).Select(m => m.Module.GetType()).ToHashSet();
    }).Overlaps(types);
}
