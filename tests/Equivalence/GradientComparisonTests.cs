using TorchSharp;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The comparer every verdict rests on, driven with hand-made gradients: exact agreement, errors at and past the
/// bound, NaN and infinities on either side, shape mismatches, missing and extra names, a zero reference and a zero
/// scale floor.
/// </summary>
[Trait("Category", "Checker")]
public sealed class GradientComparisonTests
{
    private static readonly Tolerance Float64 = TolerancePolicy.ToleranceFor(ScalarType.Float64);

    public GradientComparisonTests() => TestSettings.RequireTorch();

    /// <summary>Per-sample gradients from rows of values: each entry is one parameter, <c>[N, K]</c>.</summary>
    private static PerSampleGradients Gradients(string method, params (string Name, double[][] Rows)[] entries) =>
        new(method, entries[0].Rows.Length,
            entries.Select(e => (e.Name, tensor(e.Rows.SelectMany(r => r).ToArray(), ScalarType.Float64)
                .reshape(e.Rows.Length, e.Rows[0].Length))));

    private static (string, double[][]) P(string name, params double[][] rows) => (name, rows);

    private static double[] R(params double[] values) => values;

    [Fact]
    public void Identical_gradients_pass_with_zero_error()
    {
        using var expected = Gradients("oracle", P("w", R(1, -2), R(3, 4)), P("b", R(0.5), R(-0.25)));
        using var actual = Gradients("engine", P("w", R(1, -2), R(3, 4)), P("b", R(0.5), R(-0.25)));
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        Assert.True(comparison.Passed);
        Assert.True(comparison.Complete);
        Assert.Equal(0, comparison.MaxRelativeError);
        Assert.Empty(comparison.Describe());
        Assert.All(comparison.Parameters, p => Assert.Equal(0, p.MaxAbsoluteError));
    }

    [Fact]
    public void The_error_is_the_largest_absolute_difference_over_the_parameters_largest_reference_value()
    {
        // w's largest |reference| is 4; the largest difference, 4e-11 - 0, sits in sample 1: relative 1e-11.
        using var expected = Gradients("oracle", P("w", R(1, -2), R(3, 4)));
        using var actual = Gradients("engine", P("w", R(1, -2), R(3, 4 + 4e-11)));
        var p = Assert.Single(GradientComparison.Compare(actual, expected, Float64).Parameters);
        Assert.Equal(1, p.WorstSample);
        Assert.InRange(p.RelativeError, 0.99e-11, 1.01e-11);
        Assert.True(p.Passed);
    }

    [Fact]
    public void An_error_just_past_the_bound_fails_and_one_just_below_passes()
    {
        double bound = Float64.Relative;
        using var expected = Gradients("oracle", P("w", R(1, 1)));
        using var below = Gradients("engine", P("w", R(1 + 0.5 * bound, 1)));
        using var above = Gradients("engine", P("w", R(1 + 2 * bound, 1)));
        Assert.True(GradientComparison.Compare(below, expected, Float64).Passed);
        var failing = GradientComparison.Compare(above, expected, Float64);
        Assert.False(failing.Passed);
        Assert.True(failing.Complete);
        Assert.Contains("w: relative error", failing.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_error_exactly_at_the_bound_is_accepted()
    {
        // Reference 1 (scale 1) and 0; the result's 0 is off by exactly the bound: the largest accepted error.
        double bound = Float64.Relative;
        using var expected = Gradients("oracle", P("w", R(1, 0)));
        using var atBound = Gradients("engine", P("w", R(1, bound)));
        var p = Assert.Single(GradientComparison.Compare(atBound, expected, Float64).Parameters);
        Assert.Equal(bound, p.RelativeError);
        Assert.True(p.Passed);
    }

    [Theory]
    [InlineData(1e-6)]
    [InlineData(1.0)]
    [InlineData(1e6)]
    public void Scaling_both_sides_leaves_the_relative_errors_and_the_verdict_unchanged(double factor)
    {
        // Relative error 2e-10 (past the float64 bound) in w, 5e-11 (within) in b, at any size of the gradients.
        using var expected = Gradients("oracle", P("w", R(factor, -2 * factor)), P("b", R(4 * factor)));
        using var actual = Gradients("engine", P("w", R(factor, -2 * factor * (1 + 2e-10))),
            P("b", R(4 * factor * (1 + 5e-11))));
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        var w = comparison.Parameters.Single(p => p.Name == "w");
        var b = comparison.Parameters.Single(p => p.Name == "b");
        Assert.InRange(w.RelativeError, 1.99e-10, 2.01e-10);
        Assert.InRange(b.RelativeError, 4.9e-11, 5.1e-11);
        Assert.False(w.Passed);
        Assert.True(b.Passed);
    }

    [Fact]
    public void A_sum_whose_terms_cancel_is_scaled_by_its_terms_and_still_fails_on_an_error_of_their_size()
    {
        // Two terms of norm ~0.7 that cancel: the sums differ by rounding (2.8e-17, the CI failure of a clipping
        // property) and, without the terms' magnitude, that rounding is "relative error 2" against the sum itself.
        using var expected = Gradients("sum", P("w", R(1.4e-17)));
        using var rounded = Gradients("sum reordered", P("w", R(4.2e-17)));
        Assert.False(GradientComparison.Compare(rounded, expected, Float64).Passed);
        Assert.True(GradientComparison.Compare(rounded, expected, Float64, termMagnitude: 1.4).Passed);
        // A wrong clip factor on one term leaves an error of the terms' size: still order 1 against them.
        using var wrong = Gradients("sum with a wrong factor", P("w", R(0.35)));
        var comparison = GradientComparison.Compare(wrong, expected, Float64, termMagnitude: 1.4);
        Assert.False(comparison.Passed);
        Assert.InRange(comparison.MaxRelativeError, 1, 100);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void A_non_finite_value_in_the_result_fails_and_shows_in_the_largest_error(double value)
    {
        using var expected = Gradients("oracle", P("w", R(1, 2), R(3, 4)), P("b", R(1), R(2)));
        using var actual = Gradients("engine", P("w", R(1, 2), R(3, 4)), P("b", R(1), R(value)));
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        Assert.False(comparison.Passed);
        var b = comparison.Parameters.Single(p => p.Name == "b");
        Assert.False(b.Passed);
        Assert.Equal(1, b.WorstSample);
        // The summary must not hide the non-finite parameter behind the finite ones' zero error.
        Assert.False(comparison.MaxRelativeError <= Float64.Relative,
            $"max relative error {comparison.MaxRelativeError}");
        Assert.Equal("b", comparison.Worst?.Name);
        Assert.Contains("b: relative error", comparison.Describe(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void A_non_finite_reference_never_passes_even_against_the_same_value(double value)
    {
        using var expected = Gradients("oracle", P("w", R(1, value)), P("b", R(2)));
        using var actual = Gradients("engine", P("w", R(1, value)), P("b", R(2)));
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        Assert.False(comparison.Passed);
        Assert.False(comparison.Parameters.Single(p => p.Name == "w").Passed);
    }

    [Fact]
    public void A_NaN_in_the_result_fails_even_where_the_whole_reference_is_zero()
    {
        using var expected = Gradients("oracle", P("w", R(0, 0)));
        using var actual = Gradients("engine", P("w", R(0, double.NaN)));
        Assert.False(GradientComparison.Compare(actual, expected, Float64).Passed);
    }

    [Fact]
    public void A_shape_mismatch_fails_is_named_first_and_is_left_out_of_the_largest_error()
    {
        using var expected = Gradients("oracle", P("w", R(1, 2), R(3, 4)), P("b", R(1), R(2)));
        using var actual = Gradients("engine", P("w", R(1, 2, 0), R(3, 4, 0)), P("b", R(1), R(2 + 2e-12)));
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        Assert.False(comparison.Passed);
        Assert.False(comparison.Complete);
        var w = comparison.Parameters.Single(p => p.Name == "w");
        Assert.False(w.ShapesMatch);
        Assert.False(w.Passed);
        Assert.Equal(-1, w.WorstSample);
        Assert.Equal([2L, 2L], w.ExpectedShape);
        Assert.Equal([2L, 3L], w.ActualShape);
        Assert.Same(w, comparison.Worst);
        // Only b's error counts: 2e-12 / 2.
        Assert.InRange(comparison.MaxRelativeError, 0.99e-12, 1.01e-12);
        Assert.Contains("w: shape [2, 3], expected [2, 2]", comparison.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_and_extra_names_fail_and_are_each_listed()
    {
        using var expected = Gradients("oracle", P("w", R(1)), P("b", R(2)));
        using var actual = Gradients("engine", P("w", R(1)), P("extra", R(3)));
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        Assert.False(comparison.Passed);
        Assert.Equal(["b"], comparison.Missing);
        Assert.Equal(["extra"], comparison.Unexpected);
        Assert.True(Assert.Single(comparison.Parameters).Passed);
        var text = comparison.Describe();
        Assert.Contains("b: missing from engine", text, StringComparison.Ordinal);
        Assert.Contains("extra: not in oracle", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_result_with_no_parameters_against_a_reference_with_some_fails()
    {
        using var expected = Gradients("oracle", P("w", R(1)));
        using var actual = new PerSampleGradients("engine", 1, []);
        var comparison = GradientComparison.Compare(actual, expected, Float64);
        Assert.False(comparison.Passed);
        Assert.Equal(["w"], comparison.Missing);
    }

    [Fact]
    public void An_all_zero_reference_accepts_exact_zeros_and_nothing_else()
    {
        using var expected = Gradients("oracle", P("w", R(0, 0), R(0, 0)));
        using var zeros = Gradients("engine", P("w", R(0, 0), R(0, 0)));
        using var tiny = Gradients("engine", P("w", R(0, 0), R(0, 1e-300)));
        Assert.True(GradientComparison.Compare(zeros, expected, Float64).Passed);
        var failing = GradientComparison.Compare(tiny, expected, Float64);
        Assert.False(failing.Passed);
        Assert.Equal(double.PositiveInfinity, failing.MaxRelativeError);
    }

    [Fact]
    public void A_zero_parameter_is_scaled_by_the_floor_times_the_models_largest_value()
    {
        // b's reference is zero; the model's largest value is 10, so b's scale is floor * 10.
        double noise = 0.1 * Float64.Relative * Float64.ScaleFloor * 10;
        using var expected = Gradients("oracle", P("w", R(10, 1)), P("b", R(0, 0)));
        using var actual = Gradients("engine", P("w", R(10, 1)), P("b", R(noise, 0)));
        var b = GradientComparison.Compare(actual, expected, Float64).Parameters.Single(p => p.Name == "b");
        Assert.True(b.Passed);
        Assert.InRange(b.RelativeError, 0.099 * Float64.Relative, 0.101 * Float64.Relative);

        // The same noise with a zero floor divides by b's own (zero) scale: no longer accepted.
        var noFloor = Float64 with { ScaleFloor = 0 };
        var strict = GradientComparison.Compare(actual, expected, noFloor).Parameters.Single(p => p.Name == "b");
        Assert.False(strict.Passed);
        Assert.Equal(double.PositiveInfinity, strict.RelativeError);
    }

    [Theory]
    [InlineData(3.0, 10.0, 0.1, 3.0)]
    [InlineData(0.5, 10.0, 0.1, 1.0)]
    [InlineData(0.0, 10.0, 0.0, 0.0)]
    [InlineData(0.0, 0.0, 0.1, 0.0)]
    public void The_scale_is_the_larger_of_the_parameters_maximum_and_the_floored_model_maximum(
        double parameterMax, double modelMax, double floor, double scale) =>
        Assert.Equal(scale, GradientComparison.ScaleOf(parameterMax, modelMax, floor), 15);

    [Fact]
    public void A_float32_result_is_compared_in_float64_against_a_float64_reference()
    {
        using var expected = Gradients("oracle", P("w", R(1.0 / 3, 2)));
        using var actual = new PerSampleGradients("engine", 1,
            [("w", tensor(new[] { 1.0f / 3, 2f }).reshape(1, 2))]);
        var comparison = GradientComparison.Compare(actual, expected, TolerancePolicy.ToleranceFor(ScalarType.Float32));
        Assert.True(comparison.Passed);
        // float32 rounding of 1/3 is about 1e-8 relative: visible, not zero.
        Assert.InRange(comparison.MaxRelativeError, 1e-10, 1e-7);
    }

    [Fact]
    public void The_mean_per_sample_norm_is_the_references()
    {
        // Three samples of two values (not square: rows and columns cannot be confused): norms 5, 1, 0.
        using var expected = Gradients("oracle", P("w", R(3, 4), R(0, 1), R(0, 0)));
        using var actual = Gradients("engine", P("w", R(0, 0), R(0, 0), R(0, 0)));
        var p = Assert.Single(GradientComparison.Compare(actual, expected, Float64).Parameters);
        Assert.Equal(2.0, p.ExpectedNorm, 12);
        Assert.False(p.Passed);
        Assert.Equal(0, p.WorstSample);
    }
}

/// <summary>
/// The tolerance policy: one bound per arithmetic, ordered as the arithmetic's rounding, and a refusal for the rest.
/// </summary>
[Trait("Category", "Checker")]
public sealed class TolerancePolicyTests
{
    [Fact]
    public void Bounds_grow_with_the_arithmetics_unit_roundoff()
    {
        var float64 = TolerancePolicy.ToleranceFor(ScalarType.Float64);
        var float32 = TolerancePolicy.ToleranceFor(ScalarType.Float32);
        var tf32 = TolerancePolicy.ToleranceFor(Arithmetic.Float32Tf32);
        Assert.True(float64.Relative < float32.Relative && float32.Relative < tf32.Relative);
        // Each bound sits above its unit roundoff and far below an order-1 logic error.
        Assert.InRange(float64.Relative, 1.1e-16, 1e-3);
        Assert.InRange(float32.Relative, 6e-8, 1e-2);
        Assert.InRange(tf32.Relative, 4.9e-4, 0.5);
        Assert.All(new[] { float64, float32, tf32 }, t =>
        {
            Assert.InRange(t.ScaleFloor, double.Epsilon, 1);
            Assert.False(string.IsNullOrWhiteSpace(t.Reason));
        });
    }

    [Fact]
    public void Bounds_and_floors_cover_the_rounding_the_policy_documents_as_measured()
    {
        // TolerancePolicy's remarks: TF32 moves ResNet-18's per-sample gradients at the 1e-2 level; an exactly zero
        // gradient carries rounding noise up to 1e-13 (float64) and 1e-5 (float32) of the model's largest value,
        // which the floor times the bound must accept.
        var float64 = TolerancePolicy.ToleranceFor(Arithmetic.Float64);
        var float32 = TolerancePolicy.ToleranceFor(Arithmetic.Float32);
        var tf32 = TolerancePolicy.ToleranceFor(Arithmetic.Float32Tf32);
        Assert.True(tf32.Relative > 1e-2, $"TF32 bound {tf32.Relative}");
        Assert.True(float64.ScaleFloor * float64.Relative >= 1e-13, $"float64 floor {float64.ScaleFloor}");
        Assert.True(float32.ScaleFloor * float32.Relative >= 1e-5, $"float32 floor {float32.ScaleFloor}");
        Assert.True(tf32.ScaleFloor * tf32.Relative >= 1e-5, $"TF32 floor {tf32.ScaleFloor}");
    }

    [Fact]
    public void Only_float32_has_a_TF32_arithmetic()
    {
        var error = Assert.Throws<ArgumentException>(() => new Arithmetic(ScalarType.Float64, tf32: true));
        Assert.Contains("float64", error.Message, StringComparison.Ordinal);
        Assert.Equal(Arithmetic.Float32, Arithmetic.On(CPU, ScalarType.Float32, tf32Requested: true));
        Assert.Equal(Arithmetic.Float32Tf32,
            Arithmetic.On(new Device(DeviceType.CUDA, 0), ScalarType.Float32, tf32Requested: true));
        Assert.Equal(Arithmetic.Float64,
            Arithmetic.On(new Device(DeviceType.CUDA, 0), ScalarType.Float64, tf32Requested: true));
    }

    [Fact]
    public void Arithmetic_names_round_trip_and_unknown_names_are_refused()
    {
        Assert.Equal(["float64", "float32", "float32+TF32"], Arithmetic.Known.Select(a => a.Name));
        Assert.All(Arithmetic.Known, a => Assert.Equal(a, Arithmetic.Parse(a.Name)));
        Assert.Throws<ArgumentException>(() => Arithmetic.Parse("float64+TF32"));
        Assert.All(new[] { ScalarType.Float64, ScalarType.Float32, ScalarType.Int64, ScalarType.Bool },
            t => Assert.Equal(t, ElementTypes.Parse(ElementTypes.Name(t))));
        Assert.Throws<ArgumentException>(() => ElementTypes.Parse("double"));
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Int64)]
    public void Other_element_types_are_refused_with_the_fix(ScalarType dtype)
    {
        var error = Assert.Throws<NotSupportedException>(() => TolerancePolicy.ToleranceFor(dtype));
        Assert.Contains("float32 or float64", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tolerance_prints_as_its_bound()
    {
        Assert.Equal("1e-10", TolerancePolicy.ToleranceFor(ScalarType.Float64).ToString());
        Assert.Equal("1e-4", TolerancePolicy.ToleranceFor(ScalarType.Float32).ToString());
    }
}
